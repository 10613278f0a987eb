import Foundation
import GPULedgerTelemetry
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

/// The service's Prometheus metrics, on a registry of its own (the executable also hands that
/// registry to swift-metrics; tests make one per application). Names follow Prometheus: the
/// `gpuledger_` prefix, base units, `_total` on counters.
public final class AppMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// At most this many distinct tenants, models or accelerators get their own label value
    /// each; the rest are counted under `other`, so a tenant explosion cannot explode the series.
    public let labelCap: Int
    /// Off: ingest records no usage, cost or latency series (for measuring what they cost).
    public let usageSeries: Bool
    private let seen = LockedSets()
    private let series = UsageSeries()
    private let prices = Mutex(PriceBook())

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), labelCap: Int = 200, usageSeries: Bool = true) {
        self.registry = registry
        self.labelCap = labelCap
        self.usageSeries = usageSeries
        leader(false) // until the background lease says otherwise
    }

    /// The rates the cost counter prices records at (reloaded by `MetricsRefreshService`).
    public func setPriceBook(_ book: PriceBook) {
        prices.withLock { $0 = book }
        resolvedGroups.withLock { $0.removeAll() } // their prices are resolved again
    }

    /// Every metric's help text (one per name, as Prometheus asks).
    static let help: [String: String] = [
        "gpuledger_ingest_records_total": "Usage records taken by POST /v1/usage, by outcome (accepted, duplicate, conflict)",
        "gpuledger_ingest_rejected_records_total": "Usage records refused by POST /v1/usage, by reason (a refused request counts each of its records; an unparseable body counts 1)",
        "gpuledger_usage_gpu_seconds_total": "GPU-seconds of accepted usage records, by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_requests_total": "LLM requests (accepted usage records), by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_errors_total": "LLM requests with status error, by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_input_tokens_total": "Input tokens of accepted usage records, by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_cached_input_tokens_total": "Cached (prefix-cache hit) input tokens of accepted usage records, by tenant, model and accelerator",
        "gpuledger_usage_cache_reported_input_tokens_total": "Input tokens of accepted usage records that report cached_input_tokens (the cache hit rate's denominator), by tenant, model and accelerator",
        "gpuledger_usage_output_tokens_total": "Output tokens of accepted usage records, by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_cost_usd_total": "Cost of accepted usage records at the rate in force when each ran (floating point; the API's figures are exact), by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_unpriced_records_total": "Accepted usage records no rate covers (not in the cost counter), by accelerator (past the label cap: other)",
        "gpuledger_llm_time_to_first_token_seconds": "Time to first token of accepted usage records, by model (past the label cap: other)",
        "gpuledger_llm_time_per_output_token_seconds": "Time per output token of accepted usage records, by model (past the label cap: other)",
        "gpuledger_llm_e2e_request_latency_seconds": "End-to-end latency of accepted usage records, by model (past the label cap: other)",
        "gpuledger_pool_hardware_utilization_ratio": "Mean busy fraction of the pool's GPUs over the last whole hour (dcgm-exporter: DCGM_FI_PROF_GR_ENGINE_ACTIVE, else DCGM_FI_DEV_GPU_UTIL / 100), pools with a gpu_selector",
        "gpuledger_pool_hardware_busy_gpus": "The pool's GPUs busy on average over the last whole hour, by the hardware (sum of the GPUs' busy fractions)",
        "gpuledger_pool_hardware_memory_used_ratio_max": "Highest framebuffer memory used / total of any of the pool's GPUs over the last whole hour",
        "gpuledger_pool_hardware_idle_allocated_cost_usd": "Paid cost of the pool's GPU time that the hardware spent idle in the last whole hour (allocated but idle)",
        "gpuledger_llm_queue_time_seconds": "Time accepted usage records waited in the engine's queue (queue_ms), by model (past the label cap: other)",
        "gpuledger_database_connections_in_use": "Database connections lent out now",
        "gpuledger_database_connection_waiters": "Callers waiting for a database connection now",
        "gpuledger_database_acquire_timeouts_total": "Waits for a database connection that ran out (answered 503)",
        "gpuledger_pool_provisioned_gpus": "GPUs provisioned in the pool now (its latest capacity event)",
        "gpuledger_pool_busy_gpus": "Busy GPUs of the pool (GPU-seconds / 3600) in the last whole hour",
        "gpuledger_pool_utilization_ratio": "Busy / provisioned GPUs of the pool in the last whole hour (pools with capacity)",
        "gpuledger_summary_folded_rows_total": "Summary delta rows (a batch's sums per hour, tenant, model, accelerator and pool) folded into the report summaries",
        "gpuledger_summary_fold_duration_seconds": "Time one fold of the summary deltas took",
        "gpuledger_summary_folded_timestamp_seconds": "When this replica last folded the summary deltas, or began to run the fold (Unix time)",
        "gpuledger_metrics_refreshed_timestamp_seconds": "When the price book and pool gauges were last reloaded (Unix time)",
        "gpuledger_http_request_duration_seconds": "HTTP request duration by route, method and status class",
        "gpuledger_database_unavailable_total": "Requests answered 503 because the database was unreachable",
        "gpuledger_budget_amount_usd": "Budget amount for its period",
        "gpuledger_budget_spent_usd": "Spent so far in the budget's period, summed from the ledger",
        "gpuledger_budget_forecast_p50_usd": "p50 forecast of the budget period's total spend",
        "gpuledger_budget_forecast_p90_usd": "p90 forecast of the budget period's total spend",
        "gpuledger_budget_spent_ratio": "Spent / amount",
        "gpuledger_budget_forecast_ratio": "p50 forecast of the period's total / amount",
        "gpuledger_budget_state": "1 for the budget's current state (ok, warning, at_risk, exceeded), else 0",
        "gpuledger_budget_refreshed_timestamp_seconds": "When the budget gauges were last computed (Unix time)",
    ]

    static func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help[name] ?? "")
    }

    func counter(_ name: String, _ labels: [(String, String)]) -> Prometheus.Counter {
        registry.makeCounter(descriptor: Self.descriptor(name), labels: labels)
    }

    func gauge(_ name: String, _ labels: [(String, String)]) -> Prometheus.Gauge {
        registry.makeGauge(descriptor: Self.descriptor(name), labels: labels)
    }

    static let durationBuckets: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                              .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)]

    // MARK: - Ingest

    func ingested(accepted: Int, duplicates: Int, conflicts: Int) {
        for (outcome, n) in [("accepted", accepted), ("duplicate", duplicates), ("conflict", conflicts)] where n > 0 {
            counter("gpuledger_ingest_records_total", [("outcome", outcome)]).increment(by: Int64(n))
        }
    }

    /// Records refused, by reason (`invalid`, `malformed`, `too_large`, `too_many`, `unsupported_media_type`, `forbidden`).
    func rejected(reason: String, records: Int) {
        counter("gpuledger_ingest_rejected_records_total", [("reason", reason)])
            .increment(by: Int64(max(records, 1)))
    }

    static let ttftBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let tpotBuckets = [0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1]
    static let e2eBuckets = [0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300]
    static let queueBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    /// Requests, errors, tokens, GPU-seconds and cost of accepted records by tenant, model and
    /// accelerator (capped), and their latencies by model.
    ///
    /// On the ingest path, so made for it (about 0.3 µs a record, `gpuledger-bench-metrics`): the
    /// records' groups (tenant, model, accelerator, pool) found once per batch; each group's
    /// label values, counters, price history and histograms are resolved once and kept; per record
    /// there is the GPU-seconds parse, a binary search in the group's short price history and three
    /// bucket searches (four with a queue time); the sums go into the counters and histograms once per group and batch.
    ///
    /// `found`: the batch's `RecordGroups`, when the caller has them (ingest finds them once for
    /// the summary deltas, the pool-days and this).
    public func usage(_ records: [UsageRecord], groups found: RecordGroups? = nil) {
        guard usageSeries, !records.isEmpty else { return }
        let grouping = found ?? RecordGroups(records)
        let members = grouping.member
        let groups = resolve(grouping.firsts.map { records[$0] })
        var sums = [UsageSeries.Sums](repeating: UsageSeries.Sums(), count: groups.count)
        var unpricedOf = [Int64](repeating: 0, count: groups.count)
        let width = LatencyHistogram.maxBuckets + 1
        // Per group and histogram (ttft, tpot, e2e, queue): bucket counts (flat), sum and count.
        let kinds = 4
        var latencyCounts = [Int64](repeating: 0, count: groups.count * kinds * width)
        var latencySums = [Double](repeating: 0, count: groups.count * kinds)
        var latencyN = [Int64](repeating: 0, count: groups.count * kinds)
        let (ttftBuckets, tpotBuckets, e2eBuckets, queueBuckets) = (Self.ttftBuckets, Self.tpotBuckets, Self.e2eBuckets, Self.queueBuckets)
        func observe(_ value: Double, _ slot: Int, _ buckets: [Double]) {
            var b = 0
            while b < buckets.count && value > buckets[b] { b += 1 }
            latencyCounts[slot * width + b] += 1
            latencySums[slot] += value
            latencyN[slot] += 1
        }
        for i in records.indices {
            let g = Int(members[i])
            let group = groups[g]
            let seconds = records[i].gpuSeconds.flatMap(Double.init) ?? 0
            sums[g].gpuSeconds += seconds
            sums[g].requests += 1
            if records[i].status == .error { sums[g].errors += 1 }
            sums[g].inputTokens += records[i].inputTokens
            sums[g].outputTokens += records[i].outputTokens
            if let cached = records[i].cachedInputTokens {
                sums[g].cachedInputTokens += cached
                sums[g].cacheReportedInputTokens += records[i].inputTokens
            }
            if let rate = group.override ?? group.history.flatMap({ PriceBook.rate(in: $0, at: records[i].startedAt) }) {
                sums[g].cost += seconds * rate / 3600
            } else {
                unpricedOf[g] += 1
            }
            if let v = records[i].ttftMs { observe(v / 1000, kinds * g, ttftBuckets) }
            if let v = records[i].tpotMs { observe(v / 1000, kinds * g + 1, tpotBuckets) }
            if let v = records[i].e2eMs { observe(v / 1000, kinds * g + 2, e2eBuckets) }
            if let v = records[i].queueMs { observe(v / 1000, kinds * g + 3, queueBuckets) }
        }
        var unpriced: [String: Int64] = [:]
        for (g, group) in groups.enumerated() {
            group.series.add(sums[g])
            if unpricedOf[g] > 0 { unpriced[group.acceleratorLabel, default: 0] += unpricedOf[g] }
            for (k, h) in [group.histograms.ttft, group.histograms.tpot, group.histograms.e2e, group.histograms.queue].enumerated() where latencyN[kinds * g + k] > 0 {
                let slot = kinds * g + k
                h.add(counts: latencyCounts[(slot * width)..<((slot + 1) * width)], sum: latencySums[slot], count: latencyN[slot])
            }
        }
        for (accelerator, n) in unpriced {
            counter("gpuledger_usage_unpriced_records_total", [("accelerator", accelerator)]).increment(by: n)
        }
    }

    struct Group: Hashable { var tenant, model, accelerator, pool: String? }
    struct Histograms: Sendable {
        var ttft, tpot, e2e, queue: LatencyHistogram
    }
    /// What a group's records are counted with: found once, kept until the prices change. (A
    /// class: the per-record loop takes one reference, not a copy of a dozen.)
    final class Resolved: Sendable {
        let series: UsageSeries.Slot
        let acceleratorLabel: String
        let override: Double?
        let history: [(from: Int64, usd: Double)]?
        let histograms: Histograms

        init(series: UsageSeries.Slot, acceleratorLabel: String, override: Double?, history: [(from: Int64, usd: Double)]?, histograms: Histograms) {
            self.series = series
            self.acceleratorLabel = acceleratorLabel
            self.override = override
            self.history = history
            self.histograms = histograms
        }
    }

    // The registry's lookup by name and labels costs microseconds, and a batch touches hundreds
    // of groups: what each group is counted with is kept here.
    private let resolvedGroups = Mutex<[Group: Resolved]>([:])
    private let histogramCache = Mutex<[String: Histograms]>([:])

    /// Each group's counters, prices and histograms (`records`: one record of each group).
    private func resolve(_ records: [UsageRecord]) -> [Resolved] {
        let book = prices.withLock { $0 }
        return resolvedGroups.withLock { cache in
            records.map { r in
                let g = Group(tenant: r.tenant, model: r.model, accelerator: r.accelerator, pool: r.pool)
                if let known = cache[g] { return known }
                // Label values are given out in the order records came (first appearance), as the cap decides.
                let l = UsageSeries.Labels(tenant: seen.cap("tenant", r.tenant, labelCap), model: seen.cap("model", r.model, labelCap),
                               accelerator: seen.cap("accelerator", r.accelerator, labelCap))
                let (override, history) = book.prices(accelerator: r.accelerator, pool: r.pool)
                let made = Resolved(series: series.slot(l), acceleratorLabel: l.accelerator, override: override, history: history,
                                    histograms: latencyHistograms(model: l.model))
                cache[g] = made
                return made
            }
        }
    }

    /// A model's latency histograms, made on first use.
    private func latencyHistograms(model: String) -> Histograms {
        histogramCache.withLock { cache in
            if let h = cache[model] { return h }
            let h = Histograms(ttft: LatencyHistogram(name: "gpuledger_llm_time_to_first_token_seconds", model: model, buckets: Self.ttftBuckets),
                               tpot: LatencyHistogram(name: "gpuledger_llm_time_per_output_token_seconds", model: model, buckets: Self.tpotBuckets),
                               e2e: LatencyHistogram(name: "gpuledger_llm_e2e_request_latency_seconds", model: model, buckets: Self.e2eBuckets),
                               queue: LatencyHistogram(name: "gpuledger_llm_queue_time_seconds", model: model, buckets: Self.queueBuckets))
            cache[model] = h
            return h
        }
    }

    /// The latency histograms in the text format, by metric name and model.
    func renderLatency(into out: inout [UInt8]) {
        let all = histogramCache.withLock { Array($0.values) }
        guard !all.isEmpty else { return }
        for (name, pick) in [("gpuledger_llm_time_to_first_token_seconds", \Histograms.ttft),
                             ("gpuledger_llm_time_per_output_token_seconds", \Histograms.tpot),
                             ("gpuledger_llm_e2e_request_latency_seconds", \Histograms.e2e),
                             ("gpuledger_llm_queue_time_seconds", \Histograms.queue)] {
            out.append(contentsOf: "# HELP \(name) \(Self.help[name] ?? "")\n# TYPE \(name) histogram\n".utf8)
            for h in all.map({ $0[keyPath: pick] }).sorted(by: { $0.model < $1.model }) { h.render(into: &out) }
        }
    }

    /// 1 while this replica holds the background lease (runs the fold and the fleet's gauges).
    func leader(_ isLeader: Bool) {
        gauge("gpuledger_background_leader", []).set(Double(isLeader ? 1 : 0))
    }

    func folded(rows: Int64, duration: Duration) {
        counter("gpuledger_summary_folded_rows_total", []).increment(by: rows)
        registry.makeDurationHistogram(descriptor: Self.descriptor("gpuledger_summary_fold_duration_seconds"), labels: [],
                                       buckets: Self.durationBuckets).record(duration)
        foldWatched()
    }

    /// A fold succeeded, or this replica began to run the fold: what a stalled fold is measured from.
    func foldWatched() {
        gauge("gpuledger_summary_folded_timestamp_seconds", []).set(Date().timeIntervalSince1970)
    }

    // MARK: - Database and pools

    /// The database pool's figures, set just before a scrape renders.
    func observe(_ database: DatabaseStats) {
        let s = database.snapshot
        gauge("gpuledger_database_connections_in_use", []).set(Double(s.inUse))
        gauge("gpuledger_database_connection_waiters", []).set(Double(s.waiting))
        // A counter kept by the store: the difference since the last scrape is added here.
        let added = timeoutsSeen.withLock { seen -> Int in defer { seen = s.timeouts }; return s.timeouts - seen }
        counter("gpuledger_database_acquire_timeouts_total", []).increment(by: Int64(added))
    }

    private let timeoutsSeen = Mutex(0)

    /// The read replica's figures (`DATABASE_READ_URL`), at a scrape.
    func observe(_ replica: ReadReplica) {
        gauge("gpuledger_read_replica_up", []).set(Double(replica.isUp ? 1 : 0))
        let (reads, fallbacks) = (replica.reads, replica.fallbacks)
        let added = replicaSeen.withLock { seen -> (Int, Int) in
            defer { seen = (reads, fallbacks) }
            return (reads - seen.0, fallbacks - seen.1)
        }
        counter("gpuledger_read_replica_reads_total", []).increment(by: Int64(added.0))
        counter("gpuledger_read_replica_fallbacks_total", []).increment(by: Int64(added.1))
    }

    private let replicaSeen = Mutex((0, 0))
    private let poolNames = LockedSets()

    /// Sets each pool's gauges, and drops those of pools that are gone.
    public func pools(_ pools: [PoolNow]) {
        for gone in poolNames.replace("pools", with: Set(pools.map(\.pool))) {
            for name in ["gpuledger_pool_provisioned_gpus", "gpuledger_pool_busy_gpus", "gpuledger_pool_utilization_ratio"] {
                registry.unregisterGauge(gauge(name, [("pool", gone)]))
            }
        }
        for p in pools {
            let l = [("pool", p.pool)]
            gauge("gpuledger_pool_provisioned_gpus", l).set(Double(p.provisionedGPUs))
            gauge("gpuledger_pool_busy_gpus", l).set(p.busyGPUs)
            if p.provisionedGPUs > 0 {
                gauge("gpuledger_pool_utilization_ratio", l).set(p.busyGPUs / Double(p.provisionedGPUs))
            } else {
                registry.unregisterGauge(gauge("gpuledger_pool_utilization_ratio", l))
            }
        }
        gauge("gpuledger_metrics_refreshed_timestamp_seconds", []).set(Date().timeIntervalSince1970)
    }

    /// Per pool with a gpu_selector, its hardware over the last whole hour (dcgm-exporter through
    /// `--prometheus-url`), next to `gpuledger_pool_utilization_ratio` of the same hour; a pool
    /// whose figures are missing has no series (the refresh logs why).
    public func poolHardware(_ rows: [PoolHardwareRow]) {
        let shown = rows.filter { $0.figures != nil }
        for gone in poolNames.replace("hardware", with: Set(shown.map(\.pool))) {
            for name in Self.hardwareGauges { registry.unregisterGauge(gauge(name, [("pool", gone)])) }
        }
        for r in shown {
            guard let f = r.figures else { continue }
            let l = [("pool", r.pool)]
            gauge("gpuledger_pool_hardware_utilization_ratio", l).set(f.utilization)
            gauge("gpuledger_pool_hardware_busy_gpus", l).set(f.busyGPUs)
            if let m = f.memoryUsedRatioMax { gauge("gpuledger_pool_hardware_memory_used_ratio_max", l).set(m) }
            if let c = r.idleAllocatedCost { gauge("gpuledger_pool_hardware_idle_allocated_cost_usd", l).set(NSDecimalNumber(decimal: c).doubleValue) }
        }
    }

    static let hardwareGauges = ["gpuledger_pool_hardware_utilization_ratio", "gpuledger_pool_hardware_busy_gpus",
                                 "gpuledger_pool_hardware_memory_used_ratio_max", "gpuledger_pool_hardware_idle_allocated_cost_usd"]

    // MARK: - HTTP

    func request(route: String, method: String, status: Int, duration: Duration) {
        let labels = [("route", route), ("method", method), ("status_class", "\(status / 100)xx")]
        registry.makeDurationHistogram(descriptor: Self.descriptor("gpuledger_http_request_duration_seconds"), labels: labels,
                                       buckets: Self.durationBuckets).record(duration)
        if status == 503 {
            counter("gpuledger_database_unavailable_total", [])
                .increment()
        }
    }

    // MARK: - Budgets

    private let budgetNames = LockedSets()

    /// Sets each budget's gauges from its status (computed at `at`), and drops those of budgets
    /// that are gone.
    public func budgets(_ statuses: [BudgetStatus], at: Timestamp) {
        func d(_ x: Decimal) -> Double { NSDecimalNumber(decimal: x).doubleValue }
        let names = Set(statuses.map(\.budget.name))
        for gone in budgetNames.replace("budgets", with: names) {
            for name in Self.budgetGaugeNames { registry.unregisterGauge(gauge(name, [("budget", gone)])) }
            for state in Self.states { registry.unregisterGauge(gauge("gpuledger_budget_state", [("budget", gone), ("state", state)])) }
        }
        for s in statuses {
            let b = [("budget", s.budget.name)]
            gauge("gpuledger_budget_amount_usd", b).set(d(s.budget.amount))
            gauge("gpuledger_budget_spent_usd", b).set(d(s.spent))
            gauge("gpuledger_budget_forecast_p50_usd", b).set(d(s.forecastP50))
            gauge("gpuledger_budget_forecast_p90_usd", b).set(d(s.forecastP90))
            gauge("gpuledger_budget_spent_ratio", b).set(d(s.spent / s.budget.amount))
            gauge("gpuledger_budget_forecast_ratio", b).set(d(s.forecastP50 / s.budget.amount))
            for state in Self.states {
                gauge("gpuledger_budget_state", b + [("state", state)]).set(state == s.state.rawValue ? 1.0 : 0.0)
            }
        }
        gauge("gpuledger_budget_refreshed_timestamp_seconds", [])
            .set(Date().timeIntervalSince1970)
    }

    static let budgetGaugeNames = ["gpuledger_budget_amount_usd", "gpuledger_budget_spent_usd", "gpuledger_budget_forecast_p50_usd",
                                   "gpuledger_budget_forecast_p90_usd", "gpuledger_budget_spent_ratio", "gpuledger_budget_forecast_ratio"]
    static let states = ["ok", "warning", "at_risk", "exceeded"]

    /// The exposition text.
    public func render() -> [UInt8] {
        var out = registry.emitToBuffer()
        series.render(help: Self.help, into: &out)
        renderLatency(into: &out)
        return out
    }
}

/// Sets of label values seen, behind a lock.
final class LockedSets: @unchecked Sendable {
    private let lock = NSLock()
    private var sets: [String: Set<String>] = [:]

    /// `value`, or `other` once `cap` distinct values of `kind` were seen.
    func cap(_ kind: String, _ value: String, _ cap: Int) -> String {
        lock.lock(); defer { lock.unlock() }
        if sets[kind, default: []].contains(value) { return value }
        guard sets[kind, default: []].count < cap else { return "other" }
        sets[kind, default: []].insert(value)
        return value
    }

    /// Replaces the set of `kind`; returns the values that left it.
    func replace(_ kind: String, with values: Set<String>) -> Set<String> {
        lock.lock(); defer { lock.unlock() }
        let gone = sets[kind, default: []].subtracting(values)
        sets[kind] = values
        return gone
    }
}
