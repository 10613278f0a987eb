import Logging
import PostgresNIO
import Synchronization
import Tracing

/// The connection pool, with a bound on how long a caller waits for a connection.
///
/// PostgresNIO's pool keeps waiting requests queued while it retries a database that is down
/// (for up to a minute before its circuit breaker trips). An API request should not hang that
/// long: when no connection can be had within `acquireTimeout`, the caller gets
/// `StoreError.unavailable` (503 with Retry-After), while the pool keeps retrying in the
/// background and recovers by itself once the database is back.
public struct Database: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    public var acquireTimeout: Duration
    /// Connections in use and callers waiting, for `/metrics`.
    public let stats: DatabaseStats
    /// Where reads go first (`reading(from:)`); nil: everything on this database's client.
    public internal(set) var readReplica: ReadReplica?
    /// The longest one call may hold its connection (nil: no limit). A call still running then
    /// gets `StoreError.unavailable`, and its connection is closed, so that the pool makes a new
    /// one: after a restart of the server PostgresNIO 1.33.2 can leave a query waiting forever
    /// on a connection whose server side has already answered (seen in `scripts/ha-drill`).
    public var callTimeout: Duration?

    public init(client: PostgresClient, logger: Logger, acquireTimeout: Duration = .seconds(5), callTimeout: Duration? = nil,
                stats: DatabaseStats = DatabaseStats()) {
        self.client = client
        self.logger = logger
        self.acquireTimeout = acquireTimeout
        self.callTimeout = callTimeout
        self.stats = stats
    }

    /// This database with calls limited to `limit` (see `callTimeout`).
    public func limited(to limit: Duration) -> Database {
        var d = self
        d.callTimeout = limit
        return d
    }

    /// `body` on a connection: of the read replica first if this database reads from one.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        if readReplica != nil { return try await withReadConnection(body) }
        return try await withPrimaryConnection(body)
    }

    /// True when reads through this database may be answered by a hot standby, where nothing
    /// can be written: derived caches are then left to the primary's background runner.
    public var readsFromReplica: Bool { readReplica != nil }

    func withPrimaryConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let leased = Flag()
        let timeout = acquireTimeout
        let client = self.client
        let stats = self.stats
        let (limit, logger) = (callTimeout, self.logger)
        stats.waiting(+1)
        let waiting = Flag() // still counted as waiting
        waiting.set()
        defer { if waiting.take() { stats.waiting(-1) } }
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    try await client.withConnection { conn in
                        leased.set()
                        if waiting.take() { stats.waiting(-1) }
                        stats.inUse(+1)
                        defer { stats.inUse(-1) }
                        return try await Self.guarded(conn, limit: limit, logger: logger) { try await body(conn) }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    if leased.isSet { return nil }
                    stats.timedOut()
                    throw StoreError.unavailable("no database connection within \(timeout)")
                }
                while let result = try await group.next() {
                    if let result {
                        group.cancelAll()
                        return result
                    }
                }
                throw StoreError.unavailable("no database connection")
            }
        } catch {
            throw StoreError.from(error)
        }
    }

    /// `body` in a transaction (on the primary). Like every call, it answers
    /// `StoreError.unavailable` as soon as its connection closes (see `guarded`).
    /// BEGIN, `body`, COMMIT (a span of its own: the wait for durability); ROLLBACK when `body`
    /// throws (its error is what the caller gets).
    public func withTransaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = self.logger
        return try await withPrimaryConnection { conn in
            try await conn.query("BEGIN", logger: logger)
            let result: T
            do {
                result = try await body(conn)
            } catch {
                _ = try? await conn.query("ROLLBACK", logger: logger)
                throw error
            }
            // A span only inside a request's trace: the background jobs' transactions (the lease's
            // renewal every second) would each start a trace of their own.
            if ServiceContext.current == nil {
                try await conn.query("COMMIT", logger: logger)
            } else {
                try await withSpan("COMMIT", ofKind: .client) { span in
                    span.attributes["db.system"] = "postgresql"
                    try await conn.query("COMMIT", logger: logger)
                }
            }
            return result
        }
    }

    /// `work`'s result; or `StoreError.unavailable` as soon as `conn` closes before it is done
    /// (PostgresNIO 1.33.2 can leave a COPY, or what follows it in a transaction, waiting forever
    /// on a connection that closed under it: seen in `scripts/ha-drill` when the primary
    /// restarted under ingest), or once `limit` has passed, when the connection is closed too.
    /// The connection is looked at every 250 ms by a task that ends with the call (a callback on
    /// the connection's close future would stay registered for the connection's life, one per call).
    /// A cancelled caller cancels the work and closes the connection (a transaction's work then
    /// rolls back, unless its COMMIT was already sent), so that no half-done work is lent out.
    static func guarded<T: Sendable>(_ conn: PostgresConnection, limit: Duration?, logger: Logger,
                                     _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let once = ResumeOnce<T>()
        let running = Mutex<Task<Void, Never>?>(nil)
        let watch = Task {
            let start = ContinuousClock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                if Task.isCancelled { return }
                if conn.isClosed {
                    once.resume(.failure(StoreError.unavailable("the database connection closed during the call")))
                    return
                }
                if let limit, ContinuousClock.now - start >= limit {
                    logger.warning("a database call ran past its limit: its connection is closed", metadata: ["limit": "\(limit)"])
                    // The answer is decided now, and given once the connection is closed: the
                    // pool must not lend it out again in between.
                    guard let answer = once.claim(.failure(StoreError.unavailable("the database did not answer within \(limit)"))) else { return }
                    running.withLock { $0?.cancel() }
                    try? await conn.close()
                    answer()
                    return
                }
            }
        }
        defer { watch.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                once.set(continuation)
                let task = Task {
                    do { once.resume(.success(try await work())) } catch { once.resume(.failure(error)) }
                }
                running.withLock { $0 = task }
                if Task.isCancelled { task.cancel() }
            }
        } onCancel: {
            // The caller is gone (a client hung up); its work may still be on the connection (a
            // transaction half done): the connection is closed before the caller returns it, or
            // the next borrower's statements would run inside that transaction.
            guard let answer = once.claim(.failure(CancellationError())) else { return }
            running.withLock { $0?.cancel() }
            Task {
                try? await conn.close()
                answer()
            }
        }
    }
}

/// A continuation resumed by the first of several callers; the others are ignored.
final class ResumeOnce<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, early: Result<T, any Error>?, done: Bool)>((nil, nil, false))

    func set(_ c: CheckedContinuation<T, any Error>) {
        let early: Result<T, any Error>? = state.withLock { s in
            if let e = s.early { s.early = nil; return e }
            s.continuation = c
            return nil
        }
        if let early { c.resume(with: early) }
    }

    func resume(_ result: Result<T, any Error>) { claim(result)?() }

    /// Makes `result` the answer if none is yet (later callers are ignored from now on) and
    /// returns the closure that gives it (call it once); nil when another answer came first.
    func claim(_ result: Result<T, any Error>) -> (() -> Void)? {
        let c: CheckedContinuation<T, any Error>?? = state.withLock { s in
            guard !s.done else { return .none }
            s.done = true
            if let c = s.continuation { s.continuation = nil; return .some(c) }
            s.early = result
            return .some(nil)
        }
        guard case .some(let continuation) = c else { return nil }
        guard let continuation else { return {} } // given by set(_:) when it comes
        return { continuation.resume(with: result) }
    }
}

extension Database {
    /// Runs `body` with a database on a client of its own, which runs for the length of the call
    /// (one-shot commands, setup, tests).
    public static func withClient<T: Sendable>(_ configuration: PostgresClient.Configuration, logger: Logger, acquireTimeout: Duration = .seconds(5),
                                               _ body: @escaping @Sendable (Database) async throws -> T) async throws -> T {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await client.run(); return nil }
            defer { group.cancelAll() }
            return try await body(Database(client: client, logger: logger, acquireTimeout: acquireTimeout))
        }
    }
}

/// A Boolean shared across tasks.
public final class Flag: Sendable {
    private let value = Mutex(false)
    public init() {}
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
    /// Clears the flag; true when it was set (exactly one caller gets true).
    func take() -> Bool { exchange(false) }
    /// Sets the flag to `new`; what it was.
    public func exchange(_ new: Bool) -> Bool { value.withLock { was in defer { was = new }; return was } }
}

/// The pool's figures as this process sees them: connections lent out, callers waiting for
/// one, and waits that ran out (answered 503).
public final class DatabaseStats: Sendable {
    private let state = Mutex((inUse: 0, waiting: 0, timeouts: 0))

    public init() {}

    func inUse(_ delta: Int) { state.withLock { $0.inUse += delta } }
    func waiting(_ delta: Int) { state.withLock { $0.waiting += delta } }
    func timedOut() { state.withLock { $0.timeouts += 1 } }

    public var snapshot: (inUse: Int, waiting: Int, timeouts: Int) { state.withLock { $0 } }
}
