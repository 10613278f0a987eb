import Foundation
import GPULedgerStore
import Logging
import ServiceLifecycle
import Synchronization

/// Whether this replica runs the background jobs now: it holds the `background` lease
/// (sql/0015). Any number of `serve` processes may share one database; the lease makes one of
/// them the runner, and another takes over within `ttl` of the runner's death.
///
/// A replica counts itself the runner only until its last renewal's `ttl` has passed by its own
/// monotonic clock, less a safety margin (a fifth of it, at most a second): one cut off from
/// the database stops acting before the lease can pass to another. (The jobs would be safe twice anyway: the fold takes an
/// advisory lock and the gauges only read, but each should run once.)
public final class Leadership: Sendable {
    public static let leaseName = "background"
    public let holder: String
    public let ttl: Duration
    /// Until when this replica may act as the runner (nil: it is not one).
    private let until = Mutex<ContinuousClock.Instant?>(nil)

    /// `holder`: this replica's name in the lease and in `background_runs` (default: host and pid).
    public init(holder: String? = nil, ttl: Duration = .seconds(5)) {
        self.holder = holder ?? Self.defaultHolder
        self.ttl = ttl
    }

    public static var defaultHolder: String {
        "\(ProcessInfo.processInfo.hostName)-\(getpid())"
    }

    /// True while this replica holds the lease.
    public var isLeader: Bool { until.withLock { Self.holds($0) } }

    private static func holds(_ until: ContinuousClock.Instant?) -> Bool { until.map { ContinuousClock.now < $0 } ?? false }

    /// Records the outcome of one attempt that started at `started`; true when this replica
    /// became the runner with it (it was not before).
    func update(_ lease: LeaseStore.Lease?, started: ContinuousClock.Instant) -> Bool {
        until.withLock { until in
            let was = Self.holds(until)
            if let lease, lease.holder == holder, lease.expiresIn > 0 {
                until = started + ttl - min(.seconds(1), ttl / 5)
                return !was
            }
            until = nil
            return false
        }
    }
}

/// Takes or renews the lease every `interval` (and gives it up on shutdown).
public struct LeaderElectionService: Service {
    let leases: LeaseStore
    let leadership: Leadership
    let metrics: AppMetrics
    let interval: Duration
    let logger: Logger

    public init(database: Database, leadership: Leadership, metrics: AppMetrics, interval: Duration = .seconds(1), logger: Logger) {
        // A renewal that takes longer than the lease lasts is no use: it is given up then (and
        // its connection closed: see `Database.callTimeout`).
        self.leases = LeaseStore(database: database.limited(to: leadership.ttl))
        self.leadership = leadership
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
    }

    /// One attempt; true when this replica holds the lease afterwards.
    @discardableResult
    public func attempt() async -> Bool {
        let started = ContinuousClock.now
        let wasLeader = leadership.isLeader
        var lease: LeaseStore.Lease?
        do {
            lease = try await leases.acquireOrRenew(Leadership.leaseName, holder: leadership.holder, ttl: leadership.ttl)
        } catch {
            logger.debug("background lease not renewed", metadata: ["error": .string(String(describing: error))])
        }
        let took = ContinuousClock.now - started
        if took > leadership.ttl / 5 {
            logger.warning("the background lease's renewal was slow", metadata: [
                "seconds": .string(String(format: "%.2f", Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)),
                "ttl_seconds": .stringConvertible(leadership.ttl.components.seconds), "holder": .string(leadership.holder)])
        }
        if leadership.update(lease, started: started) {
            logger.notice("this replica runs the background jobs now", metadata: ["holder": .string(leadership.holder), "term": .stringConvertible(lease?.term ?? 0)])
        } else if wasLeader && !leadership.isLeader {
            logger.warning("this replica no longer runs the background jobs", metadata: ["holder": .string(leadership.holder), "now_held_by": .string(lease?.holder ?? "unknown (database unreachable)")])
        }
        metrics.leader(leadership.isLeader)
        return leadership.isLeader
    }

    public func run() async throws {
        await runPeriodically(every: interval, logger: logger, failure: "background lease not renewed") { await attempt() }
        await stop()
    }

    /// Gives the lease up, whether or not this replica thinks it holds it: an attempt cut off by
    /// the shutdown may have taken it in the database without this replica learning so. The
    /// release matches only this holder, so it never takes the lease from another replica. (An
    /// attempt whose statement the database runs only after the release can still take it; that
    /// lease lapses after its ttl, as a dead replica's does.)
    public func stop() async {
        do {
            try await leases.release(Leadership.leaseName, holder: leadership.holder)
        } catch {
            logger.warning("the background lease was not given up; it lapses after its ttl", metadata: [
                "holder": .string(leadership.holder), "error": .string(String(describing: error))])
        }
        _ = leadership.update(nil, started: .now)
        metrics.leader(false)
    }
}
