import Foundation
import GPULedgerCore
import GPULedgerTestSupport
import Testing

@Suite struct CentRoundingTests {
    func d(_ s: String) -> Decimal { CentRounding.decimal(s)! }

    @Test func partsAddUpToTheRoundedTotalToTheCent() {
        // Three tenants sharing $10.00 equally: 3.333… each. Naive rounding gives 9.99.
        let parts = CentRounding.largestRemainder([d("3.333333333333"), d("3.333333333333"), d("3.333333333334")])
        #expect(parts == [d("3.33"), d("3.33"), d("3.34")])
        #expect(parts.reduce(0, +) == d("10"))
    }

    @Test func theLargestRemaindersGetTheMissingCents() {
        // In cents: 100.5, 200.9, 0.1, 400.4; floors add to 700, the total 701.9 rounds to 702, so
        // the two missing cents go to the remainders .9 and .5.
        let amounts = [d("1.005"), d("2.009"), d("0.001"), d("4.004")]
        let parts = CentRounding.largestRemainder(amounts)
        #expect(parts == [d("1.01"), d("2.01"), d("0.00"), d("4.00")])
        #expect(parts.reduce(0, +) == d("7.02"))
    }

    @Test func tiesGoToTheLargerAmountThenTheEarlierPart() {
        let parts = CentRounding.largestRemainder([d("0.005"), d("1.005"), d("0.005")]) // total 1.015 → 1.02
        #expect(parts == [d("0.01"), d("1.01"), d("0.00")])
    }

    @Test func manyRandomSplitsAlwaysAddUp() {
        var rng = SplitMix(seed: 20261129) // seeded: a failure can be replayed
        for _ in 0..<200 {
            let n = Int.random(in: 1...60, using: &rng)
            let amounts = (0..<n).map { _ in Decimal(Int.random(in: 0...10_000_000_000, using: &rng)) / Decimal(1_000_000_000) }
            let parts = CentRounding.largestRemainder(amounts)
            let total = amounts.reduce(0, +)
            #expect(parts.reduce(0, +) == CentRounding.rounded(total, scale: 2, .plain))
            for (p, a) in zip(parts, amounts) {
                #expect(abs(p - a) < d("0.01"), "each part is within a cent of its amount")
            }
        }
    }

    @Test func centStrings() {
        #expect(CentRounding.cents(d("12.3")) == "12.30")
        #expect(CentRounding.cents(d("0.005")) == "0.01")
        #expect(CentRounding.cents(d("1234567.891")) == "1234567.89")
        #expect(CentRounding.cents(d("0")) == "0.00")
        #expect(CentRounding.cents(d("-2.5")) == "-2.50")
    }
}
