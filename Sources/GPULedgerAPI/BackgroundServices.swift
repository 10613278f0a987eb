import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import GPULedgerTelemetry
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// Folds what ingest appended to the summary deltas into the report summaries every `interval`
/// (and once at start), so that the deltas, which every report reads next to the summaries,
/// stay small. Ingest never waits for it; one fold of each part runs at a time across processes.
/// With `ingestActivity`, a fold due while this process's ingest is busy waits (polling every
/// 50 ms) until ingest pauses, at most `maxWait` or until `IngestActivity.maxRecords` records
/// came in: on two cores the fold and ingest share the CPU, and a backfill goes faster with the
/// fold after it (README, "The fold").
/// With `leadership`, only the replica holding the background lease folds (each run counted in
/// `background_runs`); without, this process always does (a single instance, tests).
public struct SummaryFoldService: Service {
    public static let job = "summary_fold"
    let usage: UsageStore
    let leases: LeaseStore
    let leadership: Leadership?
    let metrics: AppMetrics
    let interval: Duration
    let ingestActivity: IngestActivity?
    let maxWait: Duration
    let logger: Logger
    /// Whether the previous turn was this process's to fold.
    private let running = Flag()

    public init(database: Database, leadership: Leadership? = nil, metrics: AppMetrics, interval: Duration,
                ingestActivity: IngestActivity? = nil, maxWait: Duration = .seconds(10), logger: Logger) {
        self.usage = UsageStore(database: database)
        self.leases = LeaseStore(database: database)
        self.leadership = leadership
        self.metrics = metrics
        self.interval = interval
        self.ingestActivity = ingestActivity
        self.maxWait = maxWait
        self.logger = logger
    }

    public func run() async throws {
        await runPeriodically(every: interval, logger: logger, failure: "summary deltas not folded") {
            try await foldOnce()
        }
    }

    /// One turn of `run`: folds if this process is to (no `leadership`, or it holds the lease),
    /// after ingest pauses. At the first turn it is to (at start, or on taking the lease),
    /// `gpuledger_summary_folded_timestamp_seconds` is set to now, so that a fold that keeps
    /// failing on a new runner is seen as stale from there (`GPULedgerSummaryFoldStalled`).
    public func foldOnce() async throws {
        let runs = leadership?.isLeader ?? true
        if !running.exchange(runs), runs { metrics.foldWatched() }
        guard runs else { return }
        if let ingestActivity {
            let due = ContinuousClock.now
            while ingestActivity.busy(), ContinuousClock.now - due < maxWait { try await Task.sleep(for: .milliseconds(50)) }
            if let leadership, !leadership.isLeader { return }
            ingestActivity.folding()
        }
        let start = ContinuousClock.now
        let folded = try await usage.foldSummaries()
        metrics.folded(rows: folded, duration: ContinuousClock.now - start)
        if let leadership { try await leases.countRun(Self.job, holder: leadership.holder) }
    }
}

/// Keeps the summaries of whole hours (latency sketches and labels, sql/0017) up with the
/// records: every `interval`, recomputes the past hours that the fold marked changed and that have
/// been quiet for two intervals since (a backfill changes the same hours batch after batch),
/// newest first, until none is left. With `leadership`, only the replica holding the background lease does.
public struct HourSummaryService: Service {
    public static let job = "hour_summaries"
    let keeper: HourSummaryKeeper
    let leadership: Leadership?
    let clock: WallClock
    let interval: Duration
    let logger: Logger

    public init(database: Database, leadership: Leadership? = nil, clock: WallClock, interval: Duration, logger: Logger) {
        self.keeper = HourSummaryKeeper(database: database)
        self.leadership = leadership
        self.clock = clock
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await runPeriodically(every: interval, logger: logger, failure: "hour summaries not kept") {
            // A round at most 48 hours, so that the lease is looked at again between rounds.
            while !Task.isCancelled {
                if let leadership, !leadership.isLeader { return }
                if try await keeper.keep(before: clock.now().hourStart, quiet: interval * 2, limit: 48) < 48 { return }
            }
        }
    }
}

/// Keeps the gauges that need the database current: every `interval`, every budget's status
/// from the ledger, every pool's GPUs, and the price book of the cost counter; and the console's
/// fleet latency hours. (Computing a
/// thousand budget statuses takes about a second, too long for a scrape.)
///
/// With `leadership`, the fleet's gauges (budgets, pools) come from the replica holding the
/// background lease only (each refresh counted in `background_runs`): one series per budget
/// across the replicas, not one per replica. The others drop them, and keep what is their own:
/// the price book of their cost counter and their console's latency hours.
public struct MetricsRefreshService: Service {
    public static let job = "fleet_gauges"
    let budgets: BudgetStore
    let costs: CostStore
    let leases: LeaseStore
    let leadership: Leadership?
    let planning: PlanningStore
    let rates: RateStore
    let stats: StatsStore
    let metrics: AppMetrics
    let caches: ReportCaches
    let clock: WallClock
    let interval: Duration
    let logger: Logger
    /// With `--prometheus-url`: the pools' hardware gauges (last whole hour).
    let hardware: PoolHardware?
    private let hardwareNotes = HardwareNotes()

    public init(database: Database, planning: PlanningStore? = nil, leadership: Leadership? = nil, metrics: AppMetrics, caches: ReportCaches,
                clock: WallClock, interval: Duration, prometheusURL: String? = nil, logger: Logger) {
        self.hardware = prometheusURL.map { PoolHardware(stats: StatsStore(database: database), prometheusURL: $0) }
        self.budgets = BudgetStore(database: database)
        self.costs = CostStore(database: database)
        self.leases = LeaseStore(database: database)
        self.leadership = leadership
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
        if let leadership, !leadership.isLeader {
            metrics.pools([])
            metrics.poolHardware([])
            metrics.budgets([], at: now)
        } else {
            let pools = try await stats.poolsNow(at: now)
            metrics.pools(pools)
            if let hardware { try await refreshHardware(hardware, pools: pools, now: now) }
            let statuses = try await planning.statuses(try await budgets.list(), at: now)
            metrics.budgets(statuses, at: now)
            caches.budgetStatuses.store(statuses, at: now)
            // The month's report caches (idle and token shares per pool-day) brought up to date on
            // the primary, so that reports read through a hot standby, which cannot write them,
            // find them current.
            _ = try await costs.chargebackItems(period: Period.containing(now), now: now, detail: .tenantTotals)
            if let leadership { try await leases.countRun(Self.job, holder: leadership.holder) }
        }
        // The Models page's chart for the fleet: the hours that changed since the last refresh.
        let hourEnd = now.hourStart.adding(hours: 1)
        _ = try await caches.latencyHours.series(stats, from: hourEnd.adding(hours: -24), to: hourEnd, tenant: nil)
    }

    /// The hardware gauges of the last whole hour, next to the records' of the same hour; a
    /// pool's missing figures are logged when the reason changes (not every refresh).
    func refreshHardware(_ hardware: PoolHardware, pools: [PoolNow], now: Timestamp) async throws {
        let selectors = try await hardware.selectors()
        let to = now.hourStart, from = now.hourStart.adding(hours: -1)
        var rows: [PoolHardwareRow] = []
        for p in pools where selectors[p.pool] != nil {
            rows.append(try await hardware.row(pool: p.pool, selector: selectors[p.pool], from: from, to: to, now: now,
                                               ledgerGPUSeconds: p.busyGPUs * 3600))
        }
        metrics.poolHardware(rows)
        for r in rows {
            let changed = hardwareNotes.changed(r.pool, r.note)
            if changed, let note = r.note {
                logger.warning("no GPU hardware figures for a pool", metadata: ["pool": .string(r.pool), "why": .string(note)])
            }
        }
    }

    public func run() async throws {
        guard let leadership else {
            await runPeriodically(every: interval, logger: logger, failure: "metrics gauges not refreshed") { try await refresh() }
            return
        }
        // Every `interval`, and at once when this replica takes the lease over (a new runner's
        // gauges should not wait a minute).
        let last = Mutex<(at: ContinuousClock.Instant?, leader: Bool)>((nil, false))
        let interval = self.interval
        await runPeriodically(every: min(interval, .seconds(1)), logger: logger, failure: "metrics gauges not refreshed") {
            let leader = leadership.isLeader
            let due = last.withLock { l in
                defer { l.leader = leader }
                guard let at = l.at, ContinuousClock.now - at < interval, leader == l.leader else { l.at = .now; return true }
                return false
            }
            if due { try await refresh() }
        }
    }
}

/// The last reason logged per pool for missing hardware figures.
final class HardwareNotes: Sendable {
    private let notes = Mutex<[String: String]>([:])
    /// True when `note` differs from the last one of `pool` (and keeps it).
    func changed(_ pool: String, _ note: String?) -> Bool {
        notes.withLock { n in
            defer { n[pool] = note }
            return n[pool] != note
        }
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
