import Foundation
import GPULedgerCore
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
    private let prices = Mutex(PriceBook())

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), labelCap: Int = 200, usageSeries: Bool = true) {
        self.registry = registry
        self.labelCap = labelCap
        self.usageSeries = usageSeries
    }

    /// The rates the cost counter prices records at (reloaded by `MetricsRefreshService`).
    public func setPriceBook(_ book: PriceBook) { prices.withLock { $0 = book } }

    /// Every metric's help text (one per name, as Prometheus asks).
    static let help: [String: String] = [
        "gpuledger_ingest_records_total": "Usage records taken by POST /v1/usage, by outcome (accepted, duplicate, conflict)",
        "gpuledger_ingest_rejected_records_total": "Usage records refused by POST /v1/usage, by reason (a refused request counts each of its records; an unparseable body counts 1)",
        "gpuledger_usage_gpu_seconds_total": "GPU-seconds of accepted usage records, by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_requests_total": "LLM requests (accepted usage records), by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_errors_total": "LLM requests with status error, by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_input_tokens_total": "Input tokens of accepted usage records, by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_output_tokens_total": "Output tokens of accepted usage records, by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_cost_usd_total": "Cost of accepted usage records at the rate in force when each ran (floating point; the API's figures are exact), by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_unpriced_records_total": "Accepted usage records no rate covers (not in the cost counter), by accelerator (past the label cap: other)",
        "gpuledger_llm_time_to_first_token_seconds": "Time to first token of accepted usage records, by model (past the label cap: other)",
        "gpuledger_llm_time_per_output_token_seconds": "Time per output token of accepted usage records, by model (past the label cap: other)",
        "gpuledger_llm_e2e_request_latency_seconds": "End-to-end latency of accepted usage records, by model (past the label cap: other)",
        "gpuledger_database_connections_in_use": "Database connections lent out now",
        "gpuledger_database_connection_waiters": "Callers waiting for a database connection now",
        "gpuledger_database_acquire_timeouts_total": "Waits for a database connection that ran out (answered 503)",
        "gpuledger_pool_provisioned_gpus": "GPUs provisioned in the pool now (its latest capacity event)",
        "gpuledger_pool_busy_gpus": "Busy GPUs of the pool (GPU-seconds / 3600) in the last whole hour",
        "gpuledger_pool_utilization_ratio": "Busy / provisioned GPUs of the pool in the last whole hour (pools with capacity)",
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

    struct UsageSums {
        var gpuSeconds = 0.0, cost = 0.0
        var requests: Int64 = 0, errors: Int64 = 0, inputTokens: Int64 = 0, outputTokens: Int64 = 0, unpriced: Int64 = 0
        mutating func add(_ o: UsageSums) {
            gpuSeconds += o.gpuSeconds; cost += o.cost; requests += o.requests; errors += o.errors
            inputTokens += o.inputTokens; outputTokens += o.outputTokens; unpriced += o.unpriced
        }
    }

    static let ttftBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let tpotBuckets = [0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1]
    static let e2eBuckets = [0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300]

    /// Requests, errors, tokens, GPU-seconds and cost of accepted records by tenant, model and
    /// accelerator (capped), and their latencies by model.
    func usage(_ records: [UsageRecord]) {
        guard usageSeries else { return }
        // Summed per distinct key first (a batch has few), then capped and counted once per key.
        struct Key: Hashable { var tenant, model, accelerator: String }
        let book = prices.withLock { $0 }
        var sums: [Key: UsageSums] = [:]
        var order: [Key] = [] // first appearance: label values are given out in the order records came
        for r in records {
            let k = Key(tenant: r.tenant, model: r.model, accelerator: r.accelerator)
            if sums[k] == nil { order.append(k); sums[k] = UsageSums() }
            sums[k]!.gpuSeconds += Double(r.gpuSeconds) ?? 0
            sums[k]!.requests += 1
            if r.status == .error { sums[k]!.errors += 1 }
            sums[k]!.inputTokens += r.inputTokens
            sums[k]!.outputTokens += r.outputTokens
            if let cost = book.cost(r) { sums[k]!.cost += cost } else { sums[k]!.unpriced += 1 }
        }
        var capped: [Key: UsageSums] = [:]
        var models: [String: String] = [:] // model -> its label value
        for k in order {
            let c = Key(tenant: seen.cap("tenant", k.tenant, labelCap), model: seen.cap("model", k.model, labelCap),
                        accelerator: seen.cap("accelerator", k.accelerator, labelCap))
            models[k.model] = c.model
            capped[c, default: UsageSums()].add(sums[k]!)
        }
        var unpriced: [String: Int64] = [:]
        for (k, v) in capped {
            let labels = [("tenant", k.tenant), ("model", k.model), ("accelerator", k.accelerator)]
            counter("gpuledger_usage_gpu_seconds_total", labels).increment(by: v.gpuSeconds)
            counter("gpuledger_usage_requests_total", labels).increment(by: v.requests)
            counter("gpuledger_usage_errors_total", labels).increment(by: v.errors)
            counter("gpuledger_usage_input_tokens_total", labels).increment(by: v.inputTokens)
            counter("gpuledger_usage_output_tokens_total", labels).increment(by: v.outputTokens)
            counter("gpuledger_usage_cost_usd_total", labels).increment(by: v.cost)
            if v.unpriced > 0 { unpriced[k.accelerator, default: 0] += v.unpriced }
        }
        for (accelerator, n) in unpriced {
            counter("gpuledger_usage_unpriced_records_total", [("accelerator", accelerator)]).increment(by: n)
        }
        // Latencies: one histogram per model label value, looked up once per batch.
        var histograms: [String: (ttft: Prometheus.Histogram<Double>, tpot: Prometheus.Histogram<Double>, e2e: Prometheus.Histogram<Double>)] = [:]
        for r in records {
            let label = models[r.model]!
            if histograms[label] == nil {
                let l = [("model", label)]
                histograms[label] = (
                    registry.makeValueHistogram(descriptor: Self.descriptor("gpuledger_llm_time_to_first_token_seconds"), labels: l, buckets: Self.ttftBuckets),
                    registry.makeValueHistogram(descriptor: Self.descriptor("gpuledger_llm_time_per_output_token_seconds"), labels: l, buckets: Self.tpotBuckets),
                    registry.makeValueHistogram(descriptor: Self.descriptor("gpuledger_llm_e2e_request_latency_seconds"), labels: l, buckets: Self.e2eBuckets))
            }
            let h = histograms[label]!
            if let v = r.ttftMs { h.ttft.record(v / 1000) }
            if let v = r.tpotMs { h.tpot.record(v / 1000) }
            if let v = r.e2eMs { h.e2e.record(v / 1000) }
        }
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

    /// Sets each budget's gauges from its status, and drops those of budgets that are gone.
    public func budgets(_ statuses: [BudgetStatus]) {
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
    public func render() -> [UInt8] { registry.emitToBuffer() }
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

/// Records every request's duration by route and status class.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let metrics: AppMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            metrics.request(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: response.status.code,
                            duration: ContinuousClock.now - start)
            return response
        } catch {
            metrics.request(route: context.endpointPath ?? "unmatched", method: request.method.rawValue,
                            status: AppError.from(error).status.code, duration: ContinuousClock.now - start)
            throw error
        }
    }
}

/// Keeps the gauges that need the database current: every `interval`, every budget's status
/// from the ledger, every pool's GPUs, and the price book of the cost counter. (Computing a
/// thousand budget statuses takes about a second, too long for a scrape.)
public struct MetricsRefreshService: Service {
    let budgets: BudgetStore
    let planning: PlanningStore
    let rates: RateStore
    let stats: StatsStore
    let metrics: AppMetrics
    let interval: Duration
    let logger: Logger

    public init(database: Database, metrics: AppMetrics, interval: Duration, logger: Logger) {
        self.budgets = BudgetStore(database: database)
        self.planning = PlanningStore(database: database)
        self.rates = RateStore(database: database)
        self.stats = StatsStore(database: database)
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
    }

    /// One refresh.
    public func refresh() async throws {
        metrics.setPriceBook(try await rates.priceBook())
        metrics.pools(try await stats.poolsNow(at: .now()))
        metrics.budgets(try await planning.statuses(try await budgets.list(), at: .now()))
    }

    public func run() async throws {
        // Stops at graceful shutdown; a stop is not an error (the service group would fail on one).
        await cancelWhenGracefulShutdown {
            var first = true
            while !Task.isCancelled {
                do { try await refresh() } catch {
                    if Task.isCancelled { return }
                    // (The first try can come before the migrations have run.)
                    logger.log(level: first ? .debug : .warning, "metrics gauges not refreshed", metadata: ["error": .string(String(describing: error))])
                }
                first = false
                try? await Task.sleep(for: interval)
            }
        }
    }
}
