import Logging
import PostgresNIO
import Synchronization

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

    public init(client: PostgresClient, logger: Logger, acquireTimeout: Duration = .seconds(5)) {
        self.client = client
        self.logger = logger
        self.acquireTimeout = acquireTimeout
    }

    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let leased = Flag()
        let timeout = acquireTimeout
        let client = self.client
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    try await client.withConnection { conn in
                        leased.set()
                        return try await body(conn)
                    }
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    if leased.isSet { return nil }
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

    public func withTransaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = self.logger
        return try await withConnection { conn in
            try await conn.withTransaction(logger: logger) { tx in try await body(tx) }
        }
    }
}

final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
