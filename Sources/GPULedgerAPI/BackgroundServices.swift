import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// Folds what ingest appended to the summary deltas into the report summaries every `interval`
/// (and once at start), so that the deltas, which every report reads next to the summaries,
/// stay small. Ingest never waits for it; one fold runs at a time across processes.
public struct SummaryFoldService: Service {
    let usage: UsageStore
    let metrics: AppMetrics
    let interval: Duration
    let logger: Logger

    public init(database: Database, metrics: AppMetrics, interval: Duration, logger: Logger) {
        self.usage = UsageStore(database: database)
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await runPeriodically(every: interval, logger: logger, failure: "summary deltas not folded") {
            let start = ContinuousClock.now
            let folded = try await usage.foldSummaries()
            metrics.folded(rows: folded, duration: ContinuousClock.now - start)
        }
    }
}

/// Keeps the gauges that need the database current: every `interval`, every budget's status
/// from the ledger, every pool's GPUs, and the price book of the cost counter; and the console's
/// fleet latency hours. (Computing a
/// thousand budget statuses takes about a second, too long for a scrape.)
public struct MetricsRefreshService: Service {
    let budgets: BudgetStore
    let planning: PlanningStore
    let rates: RateStore
    let stats: StatsStore
    let metrics: AppMetrics
    let caches: ReportCaches
    let clock: WallClock
    let interval: Duration
    let logger: Logger

    public init(database: Database, planning: PlanningStore? = nil, metrics: AppMetrics, caches: ReportCaches, clock: WallClock, interval: Duration, logger: Logger) {
        self.budgets = BudgetStore(database: database)
        self.planning = planning ?? PlanningStore(database: database)
        self.rates = RateStore(database: database)
        self.stats = StatsStore(database: database)
        self.metrics = metrics
        self.caches = caches
        self.clock = clock
        self.interval = interval
        self.logger = logger
    }

    /// One refresh.
    public func refresh() async throws {
        metrics.setPriceBook(try await rates.priceBook())
        let now = clock.now()
        metrics.pools(try await stats.poolsNow(at: now))
        let statuses = try await planning.statuses(try await budgets.list(), at: now)
        metrics.budgets(statuses, at: now)
        caches.budgetStatuses.store(statuses, at: now)
        // The Models page's chart for the fleet: the hours that changed since the last refresh.
        let hourEnd = now.hourStart.adding(hours: 1)
        _ = try await caches.latencyHours.series(stats, from: hourEnd.adding(hours: -24), to: hourEnd, tenant: nil)
    }

    public func run() async throws {
        await runPeriodically(every: interval, logger: logger, failure: "metrics gauges not refreshed") { try await refresh() }
    }
}

/// Runs `body` now and then every `interval` until graceful shutdown (a stop is not an error:
/// the service group would fail on one). A failure is logged and the next round tried; the
/// first is logged at debug only, since it can come before the migrations have run.
func runPeriodically(every interval: Duration, logger: Logger, failure: String, _ body: @escaping @Sendable () async throws -> Void) async {
    await cancelWhenGracefulShutdown {
        var first = true
        while !Task.isCancelled {
            do { try await body() } catch {
                if Task.isCancelled { return }
                logger.log(level: first ? .debug : .warning, "\(failure)", metadata: ["error": .string(String(describing: error))])
            }
            first = false
            try? await Task.sleep(for: interval)
        }
    }
}
