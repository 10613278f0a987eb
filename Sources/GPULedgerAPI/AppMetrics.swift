import Foundation
import GPULedgerCore
import GPULedgerStore
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// The service's Prometheus metrics, on a registry of its own (the executable also hands that
/// registry to swift-metrics; tests make one per application). Names follow Prometheus: the
/// `gpuledger_` prefix, base units, `_total` on counters.
public final class AppMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// At most this many distinct tenants, models or accelerators get their own label value
    /// each; the rest are counted under `other`, so a tenant explosion cannot explode the series.
    public let labelCap: Int
    private let seen = LockedSets()

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), labelCap: Int = 200) {
        self.registry = registry
        self.labelCap = labelCap
    }

    /// Every metric's help text (one per name, as Prometheus asks).
    static let help: [String: String] = [
        "gpuledger_ingest_records_total": "Usage records taken by POST /v1/usage, by outcome (accepted, duplicate, conflict)",
        "gpuledger_ingest_rejected_records_total": "Usage records refused by POST /v1/usage, by reason (a refused request counts each of its records; an unparseable body counts 1)",
        "gpuledger_usage_gpu_seconds_total": "GPU-seconds of accepted usage records, by tenant, model and accelerator (past the label cap: other)",
        "gpuledger_usage_requests_total": "LLM requests (accepted usage records), by tenant, model and accelerator (past the label cap: other)",
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

    /// GPU-seconds and requests of accepted records, by tenant, model and accelerator (capped).
    func usage(_ records: [UsageRecord]) {
        // Summed per distinct key first (a batch has few), then capped and counted once per key.
        struct Key: Hashable { var tenant, model, accelerator: String }
        var sums: [Key: (gpuSeconds: Double, requests: Int64)] = [:]
        var order: [Key] = [] // first appearance: label values are given out in the order records came
        for r in records {
            let k = Key(tenant: r.tenant, model: r.model, accelerator: r.accelerator)
            if sums[k] == nil { order.append(k); sums[k] = (0, 0) }
            sums[k]!.gpuSeconds += Double(r.gpuSeconds) ?? 0
            sums[k]!.requests += 1
        }
        var capped: [Key: (gpuSeconds: Double, requests: Int64)] = [:]
        for k in order {
            let v = sums[k]!
            let c = Key(tenant: seen.cap("tenant", k.tenant, labelCap), model: seen.cap("model", k.model, labelCap),
                        accelerator: seen.cap("accelerator", k.accelerator, labelCap))
            capped[c, default: (0, 0)].gpuSeconds += v.gpuSeconds
            capped[c, default: (0, 0)].requests += v.requests
        }
        for (k, v) in capped {
            let labels = [("tenant", k.tenant), ("model", k.model), ("accelerator", k.accelerator)]
            counter("gpuledger_usage_gpu_seconds_total", labels).increment(by: v.gpuSeconds)
            counter("gpuledger_usage_requests_total", labels).increment(by: v.requests)
        }
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

/// Keeps the budget gauges current: every `interval`, every budget's status from the ledger.
/// (Computing a thousand statuses takes about a second, too long for a scrape.)
public struct BudgetGaugeService: Service {
    let budgets: BudgetStore
    let planning: PlanningStore
    let metrics: AppMetrics
    let interval: Duration
    let logger: Logger

    public init(database: Database, metrics: AppMetrics, interval: Duration, logger: Logger) {
        self.budgets = BudgetStore(database: database)
        self.planning = PlanningStore(database: database)
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
    }

    /// One refresh.
    public func refresh() async throws {
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
                    logger.log(level: first ? .debug : .warning, "budget gauges not refreshed", metadata: ["error": .string(String(describing: error))])
                }
                first = false
                try? await Task.sleep(for: interval)
            }
        }
    }
}
