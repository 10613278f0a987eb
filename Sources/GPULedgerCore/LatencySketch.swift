import Foundation

/// A mergeable relative-error quantile sketch (DDSketch, Masson et al., VLDB 2019) for latencies:
/// every quantile it answers is within `relativeAccuracy` of the exact nearest-rank value
/// (PostgreSQL's `percentile_disc`) of the values it was given, and two sketches merge by adding
/// their bucket counts, so an hour's sketches sum to a day's or a week's exactly as if the values
/// had been sketched together. Stored per hour and model in `latency_sketches` (sql/0017, kept
/// by `HourSummaryKeeper`), whose SQL puts values in the same buckets (`bucket(of:)`).
///
/// A positive value `x` goes to bucket `ceil(log_γ x)` with γ = (1 + α) / (1 − α); a bucket's
/// value is `2γ^k / (γ + 1)`, within α of everything in it. Values at or below `minimum` (and 0)
/// are counted apart and answered as 0. The counts are kept dense from the lowest bucket used to
/// the highest (latencies from 1 ms to 100 s span about 580 buckets), so a merge is an add of
/// two arrays.
public struct LatencySketch: Sendable, Equatable {
    public let relativeAccuracy: Double
    private let logGamma: Double
    /// The index of `counts[0]`.
    private var offset: Int32 = 0
    /// Counts of the buckets `offset`, `offset + 1`, …; its first and last are never 0.
    private var counts: [Int64] = []
    public private(set) var zeros: Int64 = 0
    public private(set) var count: Int64 = 0
    public static let minimum = 1e-9

    public init(relativeAccuracy: Double = 0.01) {
        precondition(relativeAccuracy > 0 && relativeAccuracy < 1)
        self.relativeAccuracy = relativeAccuracy
        logGamma = log((1 + relativeAccuracy) / (1 - relativeAccuracy))
    }

    /// The buckets with values, in index order.
    public var buckets: [(index: Int32, count: Int64)] {
        counts.enumerated().compactMap { i, n in n > 0 ? (offset + Int32(i), n) : nil }
    }

    /// Adds `value` (≥ 0; NaN and negative values are the caller's mistake and are not counted).
    public mutating func add(_ value: Double, count n: Int64 = 1) {
        guard value >= 0, value.isFinite, n > 0 else { return }
        add(bucket: bucket(of: value), count: n)
    }

    /// The bucket `value` (≥ 0, finite) goes to: `zeroBucket` at or below `minimum`.
    public func bucket(of value: Double) -> Int32 {
        value <= Self.minimum ? Self.zeroBucket : Int32((log(value) / logGamma).rounded(.up))
    }

    /// The index that stands for the values counted as zero.
    public static let zeroBucket = Int32.min

    /// Adds `n` values of bucket `index` (as PostgreSQL counts them: `LatencySketchStore`).
    public mutating func add(bucket index: Int32, count n: Int64) {
        guard n > 0 else { return }
        count += n
        if index == Self.zeroBucket { zeros += n; return }
        cover(index, index)
        counts[Int(index - offset)] += n
    }

    /// Widens `counts` to hold the buckets `low...high`.
    private mutating func cover(_ low: Int32, _ high: Int32) {
        if counts.isEmpty {
            offset = low
            counts = Array(repeating: 0, count: Int(high - low) + 1)
            return
        }
        if low < offset {
            counts.insert(contentsOf: repeatElement(0, count: Int(offset - low)), at: 0)
            offset = low
        }
        let last = offset + Int32(counts.count) - 1
        if high > last { counts.append(contentsOf: repeatElement(0, count: Int(high - last))) }
    }

    /// ln γ, which the SQL that buckets values divides by.
    public var bucketWidth: Double { logGamma }

    /// Adds `other`'s counts (same accuracy only).
    public mutating func merge(_ other: LatencySketch) {
        precondition(other.relativeAccuracy == relativeAccuracy, "sketches of different accuracy do not merge")
        zeros += other.zeros
        count += other.count
        guard !other.counts.isEmpty else { return }
        cover(other.offset, other.offset + Int32(other.counts.count) - 1)
        let shift = Int(other.offset - offset)
        counts.withUnsafeMutableBufferPointer { mine in
            other.counts.withUnsafeBufferPointer { theirs in
                for i in 0..<theirs.count { mine[shift + i] += theirs[i] }
            }
        }
    }

    /// The sketch as bytes: a version byte (1: 1% accuracy), the zero count, the number of buckets,
    /// then each bucket in index order as (index − previous index, zig-zag) and count, all LEB128
    /// varints. About 3 bytes a bucket; an hour of one model's latencies takes a few hundred.
    public func encoded() -> [UInt8] {
        precondition(relativeAccuracy == 0.01, "only 1% sketches are stored")
        var out: [UInt8] = [1]
        func put(_ x: UInt64) {
            var x = x
            while x >= 0x80 { out.append(UInt8(x & 0x7f) | 0x80); x >>= 7 }
            out.append(UInt8(x))
        }
        let used = buckets
        put(UInt64(zeros))
        put(UInt64(used.count))
        var previous: Int64 = 0
        for (k, n) in used {
            let d = Int64(k) - previous
            put(UInt64(bitPattern: (d << 1) ^ (d >> 63)))
            put(UInt64(n))
            previous = Int64(k)
        }
        return out
    }

    /// The sketch `encoded()` wrote; nil for bytes it did not write.
    public init?(encoded bytes: [UInt8]) {
        guard let s = bytes.withUnsafeBufferPointer({ LatencySketch.decode($0) }) else { return nil }
        self = s
    }

    /// The same, from bytes in place.
    public init?(encoded bytes: UnsafeBufferPointer<UInt8>) {
        guard let s = LatencySketch.decode(bytes) else { return nil }
        self = s
    }

    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> LatencySketch? {
        var s = LatencySketch(relativeAccuracy: 0.01)
        var i = 0
        func get() -> UInt64? {
            var x: UInt64 = 0, shift: UInt64 = 0
            while i < bytes.count, shift < 64 {
                let b = bytes[i]
                i += 1
                x |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return x }
                shift += 7
            }
            return nil
        }
        guard let version = get(), version == 1, let z = get(), let n = get(), z <= UInt64(Int64.max), n <= UInt64(bytes.count) else { return nil }
        s.zeros = Int64(z)
        s.count = s.zeros
        var previous: Int64 = 0, first: Int64? = nil
        var pairs: [(Int32, Int64)] = []
        pairs.reserveCapacity(Int(n))
        for _ in 0..<n {
            guard let zz = get(), let c = get(), c > 0, c <= UInt64(Int64.max) else { return nil }
            let d = Int64(bitPattern: zz >> 1) ^ -Int64(bitPattern: zz & 1)
            let k = previous &+ d
            // Strictly increasing indexes, as written; a span past 2^20 buckets is not a latency.
            guard k > Int64(Int32.min), k <= Int64(Int32.max), first == nil || k > previous, k - (first ?? k) < 1 << 20 else { return nil }
            let (total, overflow) = s.count.addingReportingOverflow(Int64(c))
            guard !overflow else { return nil }
            pairs.append((Int32(k), Int64(c)))
            s.count = total
            previous = k
            if first == nil { first = k }
        }
        guard i == bytes.count else { return nil }
        if let lo = pairs.first, let hi = pairs.last {
            s.cover(lo.0, hi.0)
            for (k, c) in pairs { s.counts[Int(k - s.offset)] = c }
        }
        return s
    }

    /// The nearest-rank `q`-quantile (the smallest value with at least `q` of the values at or
    /// below it), within the relative accuracy; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0, q >= 0, q <= 1 else { return nil }
        let rank = max(Int64((q * Double(count)).rounded(.up)), 1) // 1-based, as percentile_disc
        var seen = zeros
        if seen >= rank { return 0 }
        let gamma = exp(logGamma)
        for (i, n) in counts.enumerated() {
            seen += n
            if seen >= rank { return 2 * pow(gamma, Double(offset + Int32(i))) / (gamma + 1) }
        }
        return nil
    }
}
