import Foundation
import GPULedgerStore
import Logging
import PostgresNIO

/// A fresh database per test, cloned from a template migrated once per test process.
///
/// The server is `GPULEDGER_TEST_DATABASE_URL` when set (for example CI's own PostgreSQL);
/// otherwise an embedded cluster under `/tmp/gpuledger-test-<uid>-<checkout>`, made with the same code as
/// `gpuledger serve`'s embedded default (fsync off: test data need not survive a power cut),
/// started once, and stopped when the test process exits.
public struct TestDatabase: Sendable {
    public let name: String
    public let configuration: PostgresClient.Configuration

    public static let logger: Logger = {
        var l = Logger(label: "gpuledger-test")
        l.logLevel = ProcessInfo.processInfo.environment["GPULEDGER_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        return l
    }()

    /// A new, migrated, empty database.
    public static func create() async throws -> TestDatabase {
        try await Server.shared.value.createDatabase()
    }

    /// A `DATABASE_URL` for this database, for a `gpuledger` process started by a test.
    public var url: String {
        get async throws {
            let server = try await Server.shared.value
            if let cluster = server.cluster {
                return "postgres:///\(name)?host=\(cluster.socketDirectory)&user=\(EmbeddedPostgres.superuser)"
            }
            let base = ProcessInfo.processInfo.environment["GPULEDGER_TEST_DATABASE_URL"] ?? ""
            guard var c = URLComponents(string: base) else { return base }
            c.path = "/" + name
            return c.string ?? base
        }
    }

    /// A client for this database (not yet running).
    public func makeClient() -> PostgresClient {
        PostgresClient(configuration: configuration, backgroundLogger: Self.logger)
    }

    /// Runs `body` with a running client on this database.
    public func withDatabase<T: Sendable>(_ body: @escaping @Sendable (Database) async throws -> T) async throws -> T {
        // Generous: the whole suite shares two cores with the servers it starts.
        try await Database.withClient(configuration, logger: Self.logger, acquireTimeout: .seconds(60), body)
    }

    /// The embedded test cluster's folder: one per user and checkout, so that the suites of two
    /// checkouts (a clean-clone CI run beside a working copy) never adopt, or stop, each other's.
    public static var clusterDirectory: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 // FNV-1a
        for byte in root.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "/tmp/gpuledger-test-\(getuid())-\(String(hash % 0xFFFF_FFFF, radix: 16))"
    }

    /// The migrations folder of this checkout.
    public static var migrationsDirectory: String { Migrator.defaultDirectory() }

    /// The shared server of this test process.
    public static func server() async throws -> Server { try await Server.shared.value }

    public final class Server: Sendable {
        static let shared = Task { try await Server.start() }

        let base: PostgresClient.Configuration
        let admin: PostgresClient
        let template: String
        /// The embedded cluster, when the tests run one.
        public let cluster: EmbeddedPostgres?

        init(base: PostgresClient.Configuration, admin: PostgresClient, template: String, cluster: EmbeddedPostgres?) {
            self.base = base
            self.admin = admin
            self.template = template
            self.cluster = cluster
        }

        static func start() async throws -> Server {
            let logger = TestDatabase.logger
            var base: PostgresClient.Configuration
            var cluster: EmbeddedPostgres?
            if let url = ProcessInfo.processInfo.environment["GPULEDGER_TEST_DATABASE_URL"], !url.isEmpty {
                base = try DatabaseURL.configuration(from: url)
            } else {
                let dir = TestDatabase.clusterDirectory
                let c = EmbeddedPostgres(dataDirectory: dir, extraSettings: ["fsync = off", "synchronous_commit = off", "full_page_writes = off", "max_connections = 300"], logger: logger)
                if try await c.start() {
                    TestClusterShutdown.register(c)
                }
                cluster = c
                base = c.clientConfiguration(database: "postgres")
            }
            base.applyServiceDefaults(maxConnections: 4)
            var adminConfig = base
            adminConfig.database = "postgres"
            let admin = PostgresClient(configuration: adminConfig, backgroundLogger: logger)
            Task.detached { await admin.run() }
            // The databases of earlier test processes (each test leaves its own; a cluster that
            // served many runs filled the disk): dropped when the process that made them is gone.
            var stale: [String] = []
            for try await name in try await admin.query("""
                SELECT datname FROM pg_database WHERE datname LIKE 'gpl\\_t\\_%' OR datname LIKE 'gpl\\_tmpl\\_%'
                """, logger: logger).decode(String.self) {
                let parts = name.split(separator: "_")
                if parts.count >= 3, let pid = Int32(parts[2]), pid != getpid(), kill(pid, 0) != 0 { stale.append(name) }
            }
            for name in stale { try await admin.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: logger) }
            if !stale.isEmpty { logger.info("dropped \(stale.count) databases of earlier test runs") }
            let template = "gpl_tmpl_\(getpid())"
            try await admin.query("DROP DATABASE IF EXISTS \(unescaped: template)", logger: logger)
            try await admin.query("CREATE DATABASE \(unescaped: template)", logger: logger)
            var templateConfig = base
            templateConfig.database = template
            _ = try await Database.withClient(templateConfig, logger: logger) { db in
                try await Migrator(directory: TestDatabase.migrationsDirectory, logger: logger).migrate(db)
            }
            return Server(base: base, admin: admin, template: template, cluster: cluster)
        }

        /// A new empty database on this server (used by tests of the migrations themselves).
        public func createEmptyDatabase() async throws -> TestDatabase {
            let name = "gpl_t_\(getpid())_\(NumberSource.next())"
            try await admin.query("CREATE DATABASE \(unescaped: name)", logger: TestDatabase.logger)
            var config = base
            config.database = name
            return TestDatabase(name: name, configuration: config)
        }

        func createDatabase() async throws -> TestDatabase {
            let name = "gpl_t_\(getpid())_\(NumberSource.next())"
            // Clones may run side by side: nothing stays connected to the template after migrating it.
            try await admin.query("CREATE DATABASE \(unescaped: name) TEMPLATE \(unescaped: template)", logger: TestDatabase.logger)
            var config = base
            config.database = name
            return TestDatabase(name: name, configuration: config)
        }
    }
}

/// Unique numbers for database names, across tasks.
enum NumberSource {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var value = 0
    static func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}

/// Stops the test cluster when the test process exits, if this process started it: a SIGINT to
/// its postmaster (PostgreSQL's fast shutdown), then system calls alone until it is gone (at most
/// 30 s), so that the next run starts a cluster rather than adopting one that is shutting down.
/// An exit handler that started `pg_ctl` and went through Foundation while the event loops and the
/// cooperative pool still ran was one more way for a finished run not to end.
enum TestClusterShutdown {
    nonisolated(unsafe) static var postmaster: Int32 = 0

    static func register(_ c: EmbeddedPostgres) {
        guard let pid = c.postmasterPID() else { return }
        postmaster = pid
        atexit {
            let pid = TestClusterShutdown.postmaster
            guard pid > 0, kill(pid, SIGINT) == 0 else { return }
            for _ in 0..<1500 where kill(pid, 0) == 0 { usleep(20_000) }
        }
    }
}
