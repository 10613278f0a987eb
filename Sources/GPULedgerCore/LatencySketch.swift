import Foundation

/// A mergeable relative-error quantile sketch (DDSketch, Masson et al., VLDB 2019) for latencies:
/// every quantile it answers is within `relativeAccuracy` of the exact nearest-rank value
/// (PostgreSQL's `percentile_disc`) of the values it was given, and two sketches merge by adding
/// their bucket counts, so an hour's sketches sum to a day's or a week's exactly as if the values
/// had been sketched together. Groundwork for issue 19's latency summaries (not yet stored).
///
/// A positive value `x` goes to bucket `ceil(log_γ x)` with γ = (1 + α) / (1 − α); a bucket's
/// value is `2γ^k / (γ + 1)`, within α of everything in it. Values at or below `minimum` (and 0)
/// are counted apart and answered as 0.
public struct LatencySketch: Sendable, Equatable {
    public let relativeAccuracy: Double
    private let logGamma: Double
    /// Bucket index → count.
    public private(set) var buckets: [Int32: Int64] = [:]
    public private(set) var zeros: Int64 = 0
    public private(set) var count: Int64 = 0
    public static let minimum = 1e-9

    public init(relativeAccuracy: Double = 0.01) {
        precondition(relativeAccuracy > 0 && relativeAccuracy < 1)
        self.relativeAccuracy = relativeAccuracy
        logGamma = log((1 + relativeAccuracy) / (1 - relativeAccuracy))
    }

    /// Adds `value` (≥ 0; NaN and negative values are the caller's mistake and are not counted).
    public mutating func add(_ value: Double, count n: Int64 = 1) {
        guard value >= 0, value.isFinite, n > 0 else { return }
        count += n
        if value <= Self.minimum { zeros += n; return }
        buckets[Int32((log(value) / logGamma).rounded(.up)), default: 0] += n
    }

    /// Adds `other`'s counts (same accuracy only).
    public mutating func merge(_ other: LatencySketch) {
        precondition(other.relativeAccuracy == relativeAccuracy, "sketches of different accuracy do not merge")
        for (k, n) in other.buckets { buckets[k, default: 0] += n }
        zeros += other.zeros
        count += other.count
    }

    /// The nearest-rank `q`-quantile (the smallest value with at least `q` of the values at or
    /// below it), within the relative accuracy; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0, q >= 0, q <= 1 else { return nil }
        let rank = max(Int64((q * Double(count)).rounded(.up)), 1) // 1-based, as percentile_disc
        var seen = zeros
        if seen >= rank { return 0 }
        let gamma = exp(logGamma)
        for k in buckets.keys.sorted() {
            seen += buckets[k]!
            if seen >= rank { return 2 * pow(gamma, Double(k)) / (gamma + 1) }
        }
        return nil
    }
}
