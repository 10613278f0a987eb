@testable import GPULedgerCore
import Testing

/// The parser's numbers (latencies, GPU-seconds) are the values `Double(String)` gives, bit for
/// bit, on the fast path and off it.
@Suite struct JSONNumberTests {
    func value(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { JSONNumber.double($0[...]) }
    }

    func expectSame(_ text: String) {
        let expected = Double(text)
        let got = value(text)
        #expect(got?.bitPattern == expected?.bitPattern, "\(text): \(String(describing: got)) against \(String(describing: expected))")
    }

    @Test func edgesOfTheFastPath() {
        for text in ["0", "-0", "0.0", "-0.0", "1", "12.5", "120.5", "0.1", "0.3", "4620", "1e5", "1E5", "1e+5", "1e-5", "2.5e-3", "0e7",
                     "9007199254740992", "9007199254740993", "9007199254740991.5", "90071992547409921", "1e22", "1e23", "1e-22", "1e-23",
                     "123456789012345678901234567890", "0.000000000000000000000000001", "1.50000000000000000000000", "17976931348623157e292",
                     "1e309", "-1e309", "4.9e-324", "2.4e-324", "0.30000000000000004", "100000000000000000000000", "3.14159265358979323846",
                     "1e0", "1e-0", "5e-1", "123.456e2", "123.456e-2", "1e99999999999"] {
            expectSame(text)
        }
    }

    @Test func randomNumbersOfEveryShape() {
        // A fixed linear congruential sequence: the same strings on every run.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        for _ in 0..<50_000 {
            var text = next(4) == 0 ? "-" : ""
            let intDigits = 1 + next(20)
            text += next(5) == 0 ? "0" : String(1 + next(9)) + String((1..<intDigits).map { _ in Character(String(next(10))) })
            if next(2) == 0 { text += "." + String((0...next(20)).map { _ in Character(String(next(10))) }) }
            if next(3) == 0 { text += ["e", "E"][next(2)] + ["", "+", "-"][next(3)] + String(next(40)) }
            expectSame(text)
        }
    }
}
