import Synchronization

/// A Prometheus histogram of one metric and model, filled a batch at a time (swift-prometheus's
/// takes one observation per call, a lock each: three per ingested record).
final class LatencyHistogram: Sendable {
    static let maxBuckets = 12
    let name: String
    let model: String
    let buckets: [Double]
    private let state: Mutex<State>

    /// Counts per bucket (not cumulative; the last is +Inf), their sum and count.
    struct State {
        var counts: [Int64]
        var sum = 0.0
        var count: Int64 = 0
    }

    init(name: String, model: String, buckets: [Double]) {
        precondition(buckets.count <= Self.maxBuckets)
        self.name = name
        self.model = model
        self.buckets = buckets
        self.state = Mutex(State(counts: [Int64](repeating: 0, count: buckets.count + 1)))
    }

    /// Adds a batch's bucket counts (not cumulative; `counts.count` may exceed this histogram's
    /// buckets + 1: the rest are +Inf, and empty), their sum and count.
    func add(counts: ArraySlice<Int64>, sum: Double, count: Int64) {
        state.withLock { s in
            for (i, n) in counts.enumerated() where n > 0 { s.counts[min(i, buckets.count)] += n }
            s.sum += sum
            s.count += count
        }
    }

    func render(into out: inout [UInt8]) {
        let s = state.withLock { $0 }
        let label = "model=\"" + Self.escape(model) + "\""
        var cumulative: Int64 = 0
        for (i, bound) in buckets.enumerated() {
            cumulative += s.counts[i]
            out.append(contentsOf: "\(name)_bucket{\(label),le=\"\(bound)\"} \(cumulative)\n".utf8)
        }
        out.append(contentsOf: "\(name)_bucket{\(label),le=\"+Inf\"} \(s.count)\n".utf8)
        out.append(contentsOf: "\(name)_sum{\(label)} \(s.sum)\n\(name)_count{\(label)} \(s.count)\n".utf8)
    }

    /// A label value as the text format has it: backslash, double quote and newline escaped.
    static func escape(_ s: String) -> String {
        guard s.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return s }
        return s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
