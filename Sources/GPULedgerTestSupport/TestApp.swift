import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
import GPULedgerCore
import GPULedgerStore
import Hummingbird
import Logging
import PostgresNIO

/// The instant that every test's clock reads, so that no test depends on the real date:
/// `GPULEDGER_TEST_NOW` (a date or an RFC 3339 time) when set, which is how the test command runs
/// the suites at a month's last second, on 29 February and years ahead; otherwise the system time
/// when the test process started. A test that needs "now" builds its dates from this instant.
public enum TestClock {
    public static let now: Timestamp = {
        guard let text = ProcessInfo.processInfo.environment["GPULEDGER_TEST_NOW"], !text.isEmpty else { return WallClock.system.now() }
        guard let t = Timestamp.parseDateOrTime(text) else {
            fatalError("GPULEDGER_TEST_NOW=\(text) is not a date (2028-02-29) or an RFC 3339 time (2026-12-31T23:59:59Z)")
        }
        return t
    }()

    /// The clock of every `TestApp`.
    public static let clock = WallClock.fixed(now)

    /// The start of the hour `hours` before the current one (0: the current hour).
    public static func hourStart(hoursAgo hours: Int64 = 0) -> Timestamp {
        now.hourStart.adding(hours: -hours)
    }

    /// A moment shortly before `now` (a minute), and in the current month when the month began
    /// less than a minute ago: for records that "now" must already count.
    public static var recent: Timestamp {
        Timestamp(microseconds: max(now.microseconds - 60_000_000, month.start.microseconds))
    }

    /// The current month by the test clock.
    public static var month: Period { Period.containing(now) }
}

/// The whole service on a fresh test database, with one key of each role.
public struct TestApp: Sendable {
    public let database: TestDatabase
    public let configuration: AppConfiguration
    public let adminKey: String
    public let ingestKey: String
    /// An ingest key bound to tenant `acme`.
    public let acmeIngestKey: String
    public let financeKey: String
    /// A tenant key for `acme`.
    public let acmeTenantKey: String

    public static func make(configure: (inout AppConfiguration) -> Void = { _ in }) async throws -> TestApp {
        let database = try await TestDatabase.create()
        var configuration = AppConfiguration()
        configuration.dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("gpuledger-app-\(database.name)").path
        configuration.databaseAcquireTimeout = .seconds(60) // the suite shares two cores with the servers it starts
        configuration.replicaAcquireTimeout = .seconds(60) // (a test of an unreachable replica sets its own)
        configuration.budgetGaugeInterval = nil // a test refreshes the budget gauges itself
        configuration.summaryFoldInterval = nil // and folds the summary deltas when it means to
        configuration.clock = TestClock.clock
        configure(&configuration)
        let keys = try await database.withDatabase { db in
            let store = KeyStore(database: db)
            return [
                try await store.create(role: .admin, tenant: nil, name: "test admin").key,
                try await store.create(role: .ingest, tenant: nil, name: "test ingest").key,
                try await store.create(role: .ingest, tenant: "acme", name: "acme ingest").key,
                try await store.create(role: .finance, tenant: nil, name: "test finance").key,
                try await store.create(role: .tenant, tenant: "acme", name: "acme reader").key,
            ]
        }
        return TestApp(database: database, configuration: configuration, adminKey: keys[0], ingestKey: keys[1],
                       acmeIngestKey: keys[2], financeKey: keys[3], acmeTenantKey: keys[4])
    }

    /// This application's metrics (a registry of its own).
    public let metrics = AppMetrics()
    /// And its console caches (the budget statuses and latency hours the refresh computes).
    public let caches = ReportCaches()

    /// Refreshes the budget and pool gauges, the cost counter's price book and the latency hours
    /// once, as the service does every minute, at the test clock's instant.
    public func refreshGauges() async throws {
        try await database.withDatabase { db in
            try await MetricsRefreshService(database: db, metrics: metrics, caches: caches, clock: configuration.clock, interval: .seconds(60),
                                            prometheusURL: configuration.prometheusURL, logger: TestDatabase.logger).refresh()
        }
    }

    /// Runs one turn of the summary fold job, as the service's background runner does (with
    /// this application's metrics).
    public func foldJob() async throws {
        try await database.withDatabase { db in
            try await SummaryFoldService(database: db, metrics: metrics, interval: .seconds(1), logger: TestDatabase.logger).foldOnce()
        }
    }

    /// The application, as `gpuledger serve` builds it, on this test database.
    public func application(readClient: PostgresClient? = nil) -> some ApplicationProtocol {
        // (The background jobs on a client of their own, as `serve` runs them.)
        buildApplication(configuration: configuration, client: database.makeClient(), readClient: readClient, backgroundClient: database.makeClient(),
                         migrator: Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger),
                         logger: TestDatabase.logger, metrics: metrics, caches: caches)
    }
}
