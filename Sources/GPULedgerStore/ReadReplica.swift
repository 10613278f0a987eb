import GPULedgerCore
import Logging
import PostgresNIO
import Synchronization

/// A hot standby (`DATABASE_READ_URL`) that takes the reads of a `Database` made with
/// `Database.reading(from:)`: reports, stats and console pages. When it cannot be reached the
/// read goes to the primary, the log says so once per outage and `fallbacks` counts it; it is
/// tried again after `retryAfter`.
public final class ReadReplica: Sendable {
    public let database: Database
    let retryAfter: Duration
    private let state = Mutex<(awayUntil: ContinuousClock.Instant?, fallbacks: Int, reads: Int)>((nil, 0, 0))

    public init(database: Database, retryAfter: Duration = .seconds(5)) {
        self.database = database
        self.retryAfter = retryAfter
    }

    /// Reads answered by the primary because the replica could not be reached, since start.
    public var fallbacks: Int { state.withLock { $0.fallbacks } }
    /// Reads the replica answered, since start.
    public var reads: Int { state.withLock { $0.reads } }
    /// False while reads go to the primary after a failure.
    public var isUp: Bool { state.withLock { s in s.awayUntil.map { ContinuousClock.now >= $0 } ?? true } }

    func succeeded() { state.withLock { $0.reads += 1; $0.awayUntil = nil } }

    /// Counts a fallback; true when this is the first of an outage (log it).
    func failed() -> Bool {
        state.withLock { s in
            let first = s.awayUntil == nil
            s.awayUntil = ContinuousClock.now + retryAfter
            s.fallbacks += 1
            return first
        }
    }

    func fellBack() { state.withLock { $0.fallbacks += 1 } }
}

/// Where the current request's reads went, for its answer's headers (`ReadSourceMiddleware`).
public final class ReadReport: Sendable {
    public enum Source: String, Sendable { case replica, primary }
    public struct Figures: Sendable, Equatable {
        public var source: Source
        /// The replica's last replayed commit (its time on the primary), if it has replayed any.
        public var replayedAt: Timestamp?
        /// Seconds the replica is behind: 0 when it has replayed all it received.
        public var lagSeconds: Double?
        /// The replica was asked for and could not be reached.
        public var replicaAway = false
    }
    private let state = Mutex<Figures?>(nil)

    public init() {}

    public var figures: Figures? { state.withLock { $0 } }

    func record(_ f: Figures) {
        state.withLock { s in
            // A request that read from both says primary: part of its answer is the primary's.
            if let old = s, old.source == .primary, f.source == .replica { return }
            s = f
        }
    }
}

public enum ReadContext {
    /// The request's report of where its reads went (set by `ReadSourceMiddleware`).
    @TaskLocal public static var report: ReadReport?
    /// The request asked for the primary's freshness (`X-GPULedger-Consistency: primary`).
    @TaskLocal public static var primaryOnly = false
}

extension Database {
    /// This database with its reads sent to `replica` (the primary stays for writes made through
    /// it and for reads when the replica is away or `ReadContext.primaryOnly`).
    public func reading(from replica: ReadReplica) -> Database {
        var db = self
        db.readReplica = replica
        return db
    }

    /// `body` on the replica when there is one and it answers, else on the primary.
    func withReadConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        guard let replica = readReplica else { return try await withPrimaryConnection(body) }
        if ReadContext.primaryOnly {
            ReadContext.report?.record(.init(source: .primary))
            return try await withPrimaryConnection(body)
        }
        if replica.isUp {
            do {
                let result = try await replica.database.withConnection { [logger] conn in
                    var figures: ReadReport.Figures?
                    let rows = try await conn.query("""
                        SELECT (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::int8,
                               CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
                                    ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END
                        """, logger: logger)
                    for try await (at, lag) in rows.decode((Int64?, Double?).self) {
                        figures = ReadReport.Figures(source: .replica, replayedAt: at.map { Timestamp(microseconds: $0) },
                                                     lagSeconds: lag.map { max(0, $0) })
                    }
                    // (No row: the call was given up, e.g. cancelled; nothing is said for it.)
                    guard let figures else { throw CancellationError() }
                    let result = try await body(conn)
                    // Said once the read is done: a read given up half-way says nothing.
                    ReadContext.report?.record(figures)
                    return result
                }
                replica.succeeded()
                return result
            } catch let error as StoreError where error.isConnectionFailure {
                if replica.failed() {
                    logger.warning("read replica unreachable: reads go to the primary", metadata: ["error": .string(error.description)])
                }
            }
        } else {
            replica.fellBack()
        }
        ReadContext.report?.record(.init(source: .primary, replicaAway: true))
        return try await withPrimaryConnection(body)
    }
}
