import Synchronization

/// The usage counters (`gpuledger_usage_*_total` by tenant, model and accelerator), kept outside
/// swift-prometheus's registry: the registry copies a metric's whole label dictionary for each
/// label set it adds, so registering n series cost n² (about 1 CPU-s for the first 2,000 label
/// sets of a benchmark fleet, 8 counters each). Here a label set is one dictionary insert, its
/// eight sums one lock, and a scrape renders them in the text format the registry would.
final class UsageSeries: Sendable {
    struct Labels: Hashable, Sendable { var tenant, model, accelerator: String }

    /// One label set's sums.
    struct Sums: Sendable {
        var gpuSeconds = 0.0, cost = 0.0
        var requests: Int64 = 0, errors: Int64 = 0, inputTokens: Int64 = 0, outputTokens: Int64 = 0
        var cachedInputTokens: Int64 = 0, cacheReportedInputTokens: Int64 = 0

        static func += (a: inout Sums, b: Sums) {
            a.gpuSeconds += b.gpuSeconds; a.cost += b.cost
            a.requests += b.requests; a.errors += b.errors
            a.inputTokens += b.inputTokens; a.outputTokens += b.outputTokens
            a.cachedInputTokens += b.cachedInputTokens; a.cacheReportedInputTokens += b.cacheReportedInputTokens
        }
    }

    /// One label set's counters: what ingest adds a batch's sums to.
    final class Slot: Sendable {
        let labels: Labels
        private let sums = Mutex(Sums())
        init(labels: Labels) { self.labels = labels }
        func add(_ s: Sums) { sums.withLock { $0 += s } }
        var value: Sums { sums.withLock { $0 } }
    }

    private let slots = Mutex<[Labels: Slot]>([:])

    /// The slot of a label set, made on first use.
    func slot(_ labels: Labels) -> Slot {
        slots.withLock { all in
            if let s = all[labels] { return s }
            let s = Slot(labels: labels)
            all[labels] = s
            return s
        }
    }

    /// The eight metrics, in this order, with what each shows of a label set's sums.
    static let metrics: [(name: String, value: @Sendable (Sums) -> String)] = [
        ("gpuledger_usage_gpu_seconds_total", { number($0.gpuSeconds) }),
        ("gpuledger_usage_requests_total", { "\($0.requests)" }),
        ("gpuledger_usage_errors_total", { "\($0.errors)" }),
        ("gpuledger_usage_input_tokens_total", { "\($0.inputTokens)" }),
        ("gpuledger_usage_cached_input_tokens_total", { "\($0.cachedInputTokens)" }),
        ("gpuledger_usage_cache_reported_input_tokens_total", { "\($0.cacheReportedInputTokens)" }),
        ("gpuledger_usage_output_tokens_total", { "\($0.outputTokens)" }),
        ("gpuledger_usage_cost_usd_total", { number($0.cost) }),
    ]

    /// A floating-point counter as swift-prometheus writes one: `0` before anything was added.
    static func number(_ x: Double) -> String { x == 0 ? "0" : "\(x)" }

    /// The text format: each metric's HELP and TYPE, then one sample per label set (sorted, so
    /// two scrapes list them alike). Nothing before the first record.
    func render(help: [String: String], into out: inout [UInt8]) {
        let all = slots.withLock { Array($0.values) }
            .map { (labels: $0.labels, sums: $0.value) }
            .sorted { ($0.labels.tenant, $0.labels.model, $0.labels.accelerator) < ($1.labels.tenant, $1.labels.model, $1.labels.accelerator) }
        guard !all.isEmpty else { return }
        let rendered = all.map { s in
            "{tenant=\"\(LatencyHistogram.escape(s.labels.tenant))\",model=\"\(LatencyHistogram.escape(s.labels.model))\",accelerator=\"\(LatencyHistogram.escape(s.labels.accelerator))\"} "
        }
        for (name, value) in Self.metrics {
            out.append(contentsOf: "# HELP \(name) \(help[name] ?? "")\n# TYPE \(name) counter\n".utf8)
            for (i, s) in all.enumerated() {
                out.append(contentsOf: name.utf8)
                out.append(contentsOf: rendered[i].utf8)
                out.append(contentsOf: value(s.sums).utf8)
                out.append(UInt8(ascii: "\n"))
            }
        }
    }
}
