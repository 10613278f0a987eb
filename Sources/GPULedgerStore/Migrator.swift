import Crypto
import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

/// Applies `sql/NNNN_name.sql` in name order, each file in its own transaction, recorded in
/// `schema_migrations` with a checksum, under an advisory lock so that two instances starting
/// together do not race. Files are forward-only: one that changed after it was applied is an error.
public struct Migrator: Sendable {
    public struct Migration: Sendable {
        public var version: String
        public var sql: String
        public var checksum: String
    }

    /// The lock key: the bytes of "gpuledger" folded into 63 bits, fixed forever.
    static let lockKey: Int64 = 0x67_706c_6564_6765

    public let directory: String
    let logger: Logger

    public init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// Where the migrations are: `GPULEDGER_MIGRATIONS`, else `./sql`, else the source checkout's `sql/`.
    public static func defaultDirectory() -> String {
        if let dir = ProcessInfo.processInfo.environment["GPULEDGER_MIGRATIONS"], !dir.isEmpty { return dir }
        let fm = FileManager.default
        if fm.fileExists(atPath: "sql/0001_init.sql") { return "sql" }
        // Sources/GPULedgerStore/Migrator.swift → repository root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("sql").path
    }

    public func load() throws -> [Migration] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else {
            throw StoreError.migration("no migrations folder at \(directory); run from the repository root or set GPULEDGER_MIGRATIONS")
        }
        return try names.filter { $0.hasSuffix(".sql") }.sorted().map { name in
            let sql = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            let digest = SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
            return Migration(version: String(name.dropLast(4)), sql: sql, checksum: digest)
        }
    }

    /// Applies every migration not applied yet; returns the versions applied now.
    @discardableResult
    public func migrate(_ db: Database) async throws -> [String] {
        let migrations = try load()
        let logger = self.logger
        return try await db.withConnection { conn in
                try await conn.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
                do {
                    let applied = try await apply(migrations, on: conn)
                    try await conn.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                    return applied
                } catch {
                    _ = try? await conn.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                    throw error
                }
        }
    }

    func apply(_ migrations: [Migration], on conn: PostgresConnection) async throws -> [String] {
        try await conn.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version text PRIMARY KEY,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        var done: [String: String] = [:]
        for try await (version, checksum) in try await conn.query("SELECT version, checksum FROM schema_migrations", logger: logger)
            .decode((String, String).self) {
            done[version] = checksum
        }
        var applied: [String] = []
        for m in migrations {
            if let checksum = done[m.version] {
                if checksum != m.checksum {
                    throw StoreError.migration("sql/\(m.version).sql changed after it was applied; migrations are forward-only: add a new file instead")
                }
                continue
            }
            logger.info("applying migration", metadata: ["version": "\(m.version)"])
            do {
                _ = try await conn.withTransaction(logger: logger) { tx in
                    for statement in SQLSplitter.split(m.sql) {
                        try await tx.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await tx.query("INSERT INTO schema_migrations (version, checksum) VALUES (\(m.version), \(m.checksum))", logger: logger)
                }
            } catch {
                let e = StoreError.from(error)
                if case StoreError.unavailable = e { throw e }
                throw StoreError.migration("sql/\(m.version).sql: \(Self.describe(error))")
            }
            applied.append(m.version)
        }
        return applied
    }

    /// Whether every migration in the folder has been applied (for `/readyz`).
    public func isCurrent(_ db: Database) async throws -> Bool {
        let migrations = try load()
        let logger = self.logger
        return try await db.withConnection { conn in
            let rows = try await conn.query("SELECT version FROM schema_migrations", logger: logger)
            var done = Set<String>()
            for try await version in rows.decode(String.self) { done.insert(version) }
            return migrations.allSatisfy { done.contains($0.version) }
        }
    }

    static func describe(_ error: any Error) -> String {
        var e = error
        if let t = e as? PostgresTransactionError, let inner = t.closureError ?? t.commitError ?? t.beginError { e = inner }
        if let p = e as? PSQLError, let message = p.serverInfo?[.message] {
            return "\(p.serverInfo?[.sqlState] ?? "") \(message)"
        }
        return String(describing: e)
    }
}
