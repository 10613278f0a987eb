import Foundation
import Logging
import PostgresNIO

/// gpuledger's private PostgreSQL cluster under `<data-dir>/pg` (the embedded default).
///
/// - It is created with the machine's `initdb` on first use, found on `PATH` or under
///   `/usr/lib/postgresql/*/bin` (newest version first).
/// - It listens only on a Unix socket in `<data-dir>/pg`: no TCP port to collide with.
/// - As root, it runs as an unprivileged user (`initdb` refuses root): see `SystemUser.unprivileged()`.
/// - A cluster left running by a killed service is adopted; a stale `postmaster.pid` left by a
///   crash is removed and PostgreSQL recovers from its WAL.
public struct EmbeddedPostgres: Sendable {
    public static let superuser = "gpuledger"
    public static let database = "gpuledger"

    /// The data directory given by the user (`.gpuledger` by default).
    public let dataDirectory: String
    /// Extra `postgresql.conf` lines written at creation (tests turn fsync off).
    public var extraSettings: [String]
    let logger: Logger

    public init(dataDirectory: String, extraSettings: [String] = [], logger: Logger) {
        self.dataDirectory = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
        self.extraSettings = extraSettings
        self.logger = logger
    }

    public var clusterDirectory: String { dataDirectory + "/pg" }
    public var pgdata: String { clusterDirectory + "/data" }
    public var socketDirectory: String { clusterDirectory }
    public var socketPath: String { socketDirectory + "/.s.PGSQL.5432" }
    public var logFile: String { clusterDirectory + "/postgres.log" }

    /// The client configuration for the cluster's database.
    public func clientConfiguration(database: String = EmbeddedPostgres.database) -> PostgresClient.Configuration {
        PostgresClient.Configuration(unixSocketPath: socketPath, username: Self.superuser, password: nil, database: database)
    }

    /// Finds `initdb` and `pg_ctl`.
    public static func findBinaries(
        path: String = ProcessInfo.processInfo.environment["PATH"] ?? "", libraryRoot: String = "/usr/lib/postgresql"
    ) throws -> (initdb: String, pgctl: String) {
        let fm = FileManager.default
        var dirs: [String] = path.split(separator: ":").map(String.init)
        if let versions = try? fm.contentsOfDirectory(atPath: libraryRoot) {
            let sorted = versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
            dirs += sorted.map { "\(libraryRoot)/\($0)/bin" }
        }
        for dir in dirs {
            let initdb = "\(dir)/initdb", pgctl = "\(dir)/pg_ctl"
            if fm.isExecutableFile(atPath: initdb), fm.isExecutableFile(atPath: pgctl) { return (initdb, pgctl) }
        }
        throw StoreError.configuration(
            "PostgreSQL server programs (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql/*/bin. "
                + "Install them with: apt-get install -y postgresql (Debian package postgresql-15), "
                + "or set DATABASE_URL to use an existing server.")
    }

    var runAs: SystemUser? {
        get throws { geteuid() == 0 ? try SystemUser.unprivileged() : nil }
    }

    /// Creates the cluster if needed, starts it (or adopts a running one) and makes sure the
    /// `gpuledger` database exists. Returns when it accepts connections: true when it was
    /// started now, false when a running cluster was adopted.
    @discardableResult
    public func start() async throws -> Bool {
        let (initdb, pgctl) = try Self.findBinaries()
        let user = try runAs
        let fm = FileManager.default
        guard socketPath.utf8.count < 108 else {
            throw StoreError.configuration("the data directory path \(dataDirectory) is too long for a Unix socket (\(socketPath.utf8.count) bytes, at most 107); use a shorter --data-dir")
        }
        try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        if !fm.fileExists(atPath: clusterDirectory) {
            try fm.createDirectory(atPath: clusterDirectory, withIntermediateDirectories: true,
                                   attributes: [.posixPermissions: 0o700])
        }
        if let user {
            guard chown(clusterDirectory, user.uid, user.gid) == 0 else {
                throw StoreError.configuration("cannot hand \(clusterDirectory) to user \(user.name): \(String(cString: strerror(errno)))")
            }
            let probe = try Command.run("/usr/bin/test", ["-w", clusterDirectory], asUser: user)
            guard probe.status == 0 else {
                throw StoreError.configuration("PostgreSQL runs as user \(user.name) (gpuledger runs as root), but \(user.name) cannot reach \(clusterDirectory): a folder above it is closed to other users. Use a --data-dir that other users can traverse, or set GPULEDGER_PG_USER.")
            }
        }
        if !fm.fileExists(atPath: pgdata + "/PG_VERSION") {
            try? fm.removeItem(atPath: pgdata) // a half-made cluster from an interrupted initdb
            logger.info("creating the embedded PostgreSQL cluster", metadata: ["pgdata": "\(pgdata)"])
            let r = try Command.run(initdb, ["-D", pgdata, "-U", Self.superuser, "--auth=trust", "--encoding=UTF8",
                                             "--locale=C", "--no-instructions"], asUser: user)
            guard r.status == 0 else {
                throw StoreError.configuration("initdb failed (exit \(r.status)):\n\(r.output)")
            }
            var conf = """

            # Written by gpuledger: a private cluster reached only through its Unix socket.
            listen_addresses = ''
            unix_socket_permissions = 0700
            max_wal_size = 2GB
            checkpoint_timeout = 15min
            # WAL for bulk writes (a backfill's fold writes ~370 bytes of WAL per summary row):
            # larger buffers, so that backends wait less on WAL writes, and segments kept for
            # reuse, so that a fold does not zero-fill new ones (docs/performance-log.md, "Ingest").
            wal_buffers = 64MB
            min_wal_size = 512MB

            """
            for line in extraSettings { conf += line + "\n" }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: pgdata + "/postgresql.conf"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(conf.utf8))
            try handle.close()
        }
        let startedNow: Bool
        if try isRunning(pgctl: pgctl, user: user) {
            logger.info("adopting the embedded PostgreSQL cluster that is already running", metadata: ["pgdata": "\(pgdata)"])
            startedNow = false
        } else {
            startedNow = true
            removeStaleLockFiles()
            let options = "-k '\(socketDirectory)' -c listen_addresses=''"
            let r = try Command.run(pgctl, ["-D", pgdata, "-l", logFile, "-w", "-t", "120", "-o", options, "start"], asUser: user)
            guard r.status == 0 else {
                let tail = (try? String(contentsOfFile: logFile, encoding: .utf8))?.split(separator: "\n").suffix(15).joined(separator: "\n") ?? ""
                throw StoreError.configuration("pg_ctl start failed (exit \(r.status)):\n\(r.output)\n\(logFile):\n\(tail)")
            }
            logger.info("embedded PostgreSQL started", metadata: ["socket": "\(socketPath)"])
        }
        try await ensureDatabase(Self.database)
        return startedNow
    }

    /// Stops the cluster (fast shutdown: sessions are ended, the data is safe).
    public func stop() throws {
        let (_, pgctl) = try Self.findBinaries()
        let user = try runAs
        guard try isRunning(pgctl: pgctl, user: user) else { return }
        let r = try Command.run(pgctl, ["-D", pgdata, "-m", "fast", "-w", "-t", "60", "stop"], asUser: user)
        if r.status != 0 {
            throw StoreError.configuration("pg_ctl stop failed (exit \(r.status)): \(r.output)")
        }
        logger.info("embedded PostgreSQL stopped")
    }

    func isRunning(pgctl: String, user: SystemUser?) throws -> Bool {
        guard let pid = postmasterPID() else { return false }
        guard Self.isPostgresProcess(pid) else { return false }
        let r = try Command.run(pgctl, ["-D", pgdata, "status"], asUser: user)
        return r.status == 0
    }

    /// The PID in `postmaster.pid`, if the file exists.
    public func postmasterPID() -> Int32? {
        guard let text = try? String(contentsOfFile: pgdata + "/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first else { return nil }
        return Int32(first.trimmingCharacters(in: .whitespaces))
    }

    static func isPostgresProcess(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) else {
            return true // no /proc: trust kill(2)
        }
        return comm.hasPrefix("postgres") || comm.hasPrefix("postmaster")
    }

    /// After a crash, `postmaster.pid` (and the socket's lock file) can name a PID that is now
    /// some other process; PostgreSQL would then refuse to start. Nothing of ours runs: remove them.
    func removeStaleLockFiles() {
        let fm = FileManager.default
        for file in [pgdata + "/postmaster.pid", socketPath + ".lock"] where fm.fileExists(atPath: file) {
            logger.warning("removing a stale lock file left by a crash", metadata: ["file": "\(file)"])
            try? fm.removeItem(atPath: file)
        }
    }

    /// Creates `name` if it does not exist yet.
    public func ensureDatabase(_ name: String) async throws {
        let logger = self.logger
        try await Database.withClient(clientConfiguration(database: "postgres"), logger: logger) { db in
            let rows = try await db.client.query("SELECT 1 FROM pg_database WHERE datname = \(name)", logger: logger)
            var exists = false
            for try await _ in rows { exists = true }
            if !exists {
                // The name is ours (a constant or a generated test name), never user input.
                try await db.client.query("CREATE DATABASE \(unescaped: "\"" + name + "\"")", logger: logger)
            }
        }
    }
}
