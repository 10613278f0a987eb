import Synchronization
import _ConnectionPoolModule
import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
import GPULedgerStore
import GPULedgerTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The database goes away under a running service, and comes back.
@Suite struct DatabaseOutageTests {
    @Test func answers503WithRetryAfterThenRecoversWithoutRestart() async throws {
        let dir = "/tmp/gpl-outage-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = EmbeddedPostgres(dataDirectory: dir, extraSettings: ["fsync = off"], logger: TestDatabase.logger)
        try await cluster.start()
        defer { try? cluster.stop() }
        let migrator = Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger)
        let setupClient = PostgresClientBox(cluster.clientConfiguration())
        let key = try await setupClient.run { db in
            try await migrator.migrate(db)
            return try await KeyStore(database: db).create(role: .ingest, tenant: nil, name: nil).key
        }
        var config = AppConfiguration()
        config.dataDirectory = dir
        config.databaseAcquireTimeout = .seconds(1)
        let app = buildApplication(configuration: config, client: PostgresClientBox(cluster.clientConfiguration()).client,
                                   migrator: migrator, logger: TestDatabase.logger)
        try await app.test(.router) { client in
            #expect(try await client.post("/v1/usage", key: key, body: record("before")).status == .ok)
            try cluster.stop()
            let down = try await client.post("/v1/usage", key: key, body: record("during"))
            #expect(down.status == .serviceUnavailable)
            #expect(down.errorCode == "database_unavailable")
            #expect(down.headers[.retryAfter] == "5")
            #expect(try await client.get("/readyz", key: nil).status == .serviceUnavailable)
            // The console too: a page that says so, not a JSON error or a 500.
            let page = try await client.get("/", key: nil, headers: [.cookie: "gpl_session=" + String(repeating: "ab", count: 32)])
            #expect(page.status == .serviceUnavailable && page.headers[.retryAfter] == "5", "\(page.status) \(page.headers) \(page.body)")
            #expect(page.headers[.contentType] == "text/html; charset=utf-8" && page.body.contains("id=\"refusal\""))
            #expect(try await client.get("/healthz", key: nil).status == .ok)
            try await cluster.start()
            try await waitUntil(timeout: .seconds(90), "the service to take usage again") {
                try await client.post("/v1/usage", key: key, body: record("after")).status == .ok
            }
            #expect(try await client.get("/readyz", key: nil).status == .ok)
        }
        let stored = try await PostgresClientBox(cluster.clientConfiguration()).run { db in try await UsageStore(database: db).count() }
        #expect(stored == 2)
    }
}

import PostgresNIO

/// A client on a configuration, run for the length of one call.
struct PostgresClientBox {
    let client: PostgresClient
    init(_ config: PostgresClient.Configuration) {
        var c = config
        c.applyServiceDefaults()
        configuration = c
        client = PostgresClient(configuration: c, backgroundLogger: TestDatabase.logger)
    }

    let configuration: PostgresClient.Configuration

    func run<T: Sendable>(_ body: @escaping @Sendable (Database) async throws -> T) async throws -> T {
        try await Database.withClient(configuration, logger: TestDatabase.logger, body)
    }
}

/// An unreachable database is told apart by the errors' types, not their text.
@Suite struct UnreachableDatabaseTests {
    func isUnavailable(_ error: any Error) -> Bool {
        if case .unavailable? = StoreError.from(error) as? StoreError { return true }
        return false
    }

    /// A query through the store's `Database` on `config`, which cannot connect: how it fails.
    func failure(_ config: PostgresClient.Configuration) async throws -> any Error {
        do {
            _ = try await Database.withClient(PostgresClientBox(config).configuration, logger: TestDatabase.logger, acquireTimeout: .seconds(1)) { db in
                try await db.withConnection { conn in _ = try await conn.query("SELECT 1", logger: TestDatabase.logger) }
            }
        } catch {
            return error
        }
        Issue.record("the query succeeded")
        return CancellationError()
    }

    @Test func aStoppedServerARefusedConnectionAndAPoolTimeoutAreUnavailable() async throws {
        let dir = "/tmp/gpl-unreach-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = EmbeddedPostgres(dataDirectory: dir, extraSettings: ["fsync = off"], logger: TestDatabase.logger)
        try await cluster.start()
        let stoppedConfig = cluster.clientConfiguration()
        try cluster.stop()
        // A stopped server (its socket is gone) and a TCP port nobody listens on: within the
        // acquire timeout the caller gets `unavailable` (the pool keeps retrying behind it).
        let stopped = try await failure(stoppedConfig)
        #expect(String(describing: stopped).hasPrefix("database unavailable: no database connection within"), "\(stopped)")
        var refusedConfig = PostgresClient.Configuration(host: "127.0.0.1", port: freePort(), username: "u", password: nil, database: "d", tls: .disable)
        refusedConfig.options.connectTimeout = .seconds(1)
        #expect(isUnavailable(try await failure(refusedConfig)))
        // What the pool and NIO throw when they give up, by type.
        #expect(isUnavailable(ConnectionPoolError.connectionCreationCircuitBreakerTripped))
        #expect(isUnavailable(IOError(errnoCode: ECONNREFUSED, reason: "connect")))
        #expect(isUnavailable(IOError(errnoCode: ENOENT, reason: "connect")))
        #expect(isUnavailable(ChannelError.connectTimeout(.seconds(1))))
        // Words in a message decide nothing: an error that says "connection refused" but is not one.
        struct Other: Error, CustomStringConvertible { var description: String { "connection refused by timeout" } }
        #expect(!isUnavailable(Other()))
        #expect(!isUnavailable(IOError(errnoCode: EACCES, reason: "open")))
        #expect(!isUnavailable(ConnectionPoolError.requestCancelled))
    }
}

/// A call that runs past `Database.callTimeout` is answered `unavailable`, its connection closed,
/// and the pool goes on with a new one. (The server's side runs on until it next writes to the
/// closed socket: that is what `statement_timeout` is for.)
@Suite struct CallTimeoutTests {
    @Test func aCallPastItsLimitIsUnavailableAndThePoolGoesOn() async throws {
        try await TestDatabase.create().withDatabase { db in
            let limited = db.limited(to: .seconds(1))
            let logger = TestDatabase.logger
            let started = ContinuousClock.now
            do {
                try await limited.withConnection { conn in _ = try await conn.query("SELECT pg_sleep(30)", logger: logger).collect() }
                Issue.record("a 30 s sleep finished inside a 1 s limit")
            } catch let error as StoreError {
                #expect(String(describing: error) == "database unavailable: the database did not answer within 1.0 seconds")
            }
            // Answered at the limit (the watch looks every 250 ms), long before the sleep's end.
            #expect(ContinuousClock.now - started < .seconds(10))
            // The same in a transaction; then a call within the limit works on the same pool.
            await #expect(throws: StoreError.self) {
                try await limited.withTransaction { conn in _ = try await conn.query("SELECT pg_sleep(30)", logger: logger).collect() }
            }
            let one = try await limited.withConnection { conn in
                try await conn.query("SELECT 1", logger: logger).collect().first!.decode(Int.self)
            }
            #expect(one == 1)
        }
    }

    /// A caller cancelled mid-transaction (a client gone): the connection its work was on is
    /// closed before the caller hears, so the pool cannot lend out a half-done transaction.
    @Test func aCancelledCallClosesItsConnection() async throws {
        try await TestDatabase.create().withDatabase { db in
            let logger = TestDatabase.logger
            let used = Mutex<PostgresConnection?>(nil)
            let started = AsyncStream<Void>.makeStream()
            let call = Task {
                try await db.withTransaction { conn in
                    used.withLock { $0 = conn }
                    started.continuation.yield()
                    _ = try await conn.query("SELECT pg_sleep(30)", logger: logger).collect()
                }
            }
            for await _ in started.stream { break }
            call.cancel()
            await #expect(throws: CancellationError.self) { try await call.value }
            #expect(used.withLock { $0?.isClosed } == true)
            let one = try await db.withConnection { conn in try await conn.query("SELECT 1", logger: logger).collect().first!.decode(Int.self) }
            #expect(one == 1)
        }
    }
}
