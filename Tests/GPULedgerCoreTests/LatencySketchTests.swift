import Foundation
import GPULedgerCore
import GPULedgerTestSupport
import Testing

@Suite struct LatencySketchTests {
    func nearestRank(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        return sorted[max(Int((q * Double(sorted.count)).rounded(.up)) - 1, 0)]
    }

    /// Latency-like values (log-normal, from 1 ms to minutes, and a few exact zeros): every
    /// percentile the sketch answers is within 1% of the exact nearest-rank one.
    @Test func everyQuantileIsWithinOnePercentOfTheExactOne() {
        var rng = SplitMix(seed: 21)
        var values: [Double] = []
        for i in 0..<20_000 {
            let u1 = max(Double(Int.random(in: 1...1_000_000, using: &rng)) / 1_000_000, 1e-6)
            let u2 = Double(Int.random(in: 0...1_000_000, using: &rng)) / 1_000_000
            let normal = sqrt(-2 * log(u1)) * cos(2 * .pi * u2)
            values.append(i % 997 == 0 ? 0 : exp(5 + 1.5 * normal)) // median ~150 ms, long tail
        }
        var sketch = LatencySketch()
        for v in values { sketch.add(v) }
        #expect(sketch.count == Int64(values.count))
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let exact = nearestRank(values, q), estimate = sketch.quantile(q) ?? -1
            if exact == 0 { #expect(estimate == 0) } else {
                #expect(abs(estimate - exact) / exact <= 0.01, "q=\(q): \(estimate) against \(exact)")
            }
        }
        #expect(LatencySketch().quantile(0.5) == nil)
    }

    /// Hours merged into a day answer what one sketch of the day's values answers.
    @Test func mergedSketchesEqualOneSketchOfAllTheValues() {
        var rng = SplitMix(seed: 5)
        var day = LatencySketch(), merged = LatencySketch()
        for _ in 0..<24 {
            var hour = LatencySketch()
            for _ in 0..<500 {
                let v = Double(Int.random(in: 1...5_000_000, using: &rng)) / 1000
                hour.add(v)
                day.add(v)
            }
            merged.merge(hour)
        }
        #expect(merged == day)
        for q in [0.5, 0.95, 0.99] { #expect(merged.quantile(q) == day.quantile(q)) }
    }

    /// The stored bytes give back the same sketch; bytes it did not write are refused.
    @Test func encodedBytesDecodeToTheSameSketch() {
        var rng = SplitMix(seed: 9)
        var sketch = LatencySketch()
        for i in 0..<5000 { sketch.add(i % 101 == 0 ? 0 : Double(Int.random(in: 1...90_000_000, using: &rng)) / 1000) }
        sketch.add(1e-7) // below a microsecond of a millisecond: a bucket of negative index
        let bytes = sketch.encoded()
        #expect(LatencySketch(encoded: bytes) == sketch)
        #expect(bytes.count < 4 * sketch.buckets.count)
        #expect(LatencySketch(encoded: LatencySketch().encoded()) == LatencySketch())
        #expect(LatencySketch(encoded: [UInt8]()) == nil)
        #expect(LatencySketch(encoded: [2, 0, 0]) == nil) // another version
        #expect(LatencySketch(encoded: Array(bytes.dropLast())) == nil)
        #expect(LatencySketch(encoded: bytes + [0]) == nil)
    }
}
