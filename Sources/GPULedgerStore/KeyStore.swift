import Crypto
import Foundation
import GPULedgerCore
import Logging
import NIOCore
import PostgresNIO

/// API keys: random, shown once, stored as SHA-256 hashes.
public struct KeyStore: Sendable {
    public struct NewKey: Sendable {
        /// The secret itself: shown once, never stored.
        public var key: String
        public var id: Int64
        public var prefix: String
    }

    public enum KeyError: Error, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self { case .invalid(let m): return m }
        }
    }

    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) {
        self.db = database
    }

    /// `gpl_` and 64 hex digits: 256 random bits from the system's secure generator.
    static func generateKey() -> String { "gpl_" + randomHex() }

    /// 64 hex digits: 256 random bits from the system's secure generator (keys, console sessions).
    static func randomHex() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(rng.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
    }

    static func hash(_ key: String) -> ByteBuffer { ByteBuffer(bytes: SHA256.hash(data: Data(key.utf8))) }

    public func create(role: Role, tenant: String?, name: String?) async throws -> NewKey {
        switch (role, tenant) {
        case (.tenant, nil):
            throw KeyError.invalid("a tenant key needs --tenant")
        case (.admin, .some), (.finance, .some):
            throw KeyError.invalid("--tenant applies only to the ingest and tenant roles; \(role.rawValue) keys see every tenant")
        default: break
        }
        if let tenant, !UsageRecord.isValidTenant(tenant) {
            throw KeyError.invalid("--tenant \(tenant) is not a valid tenant name (^[a-z0-9][a-z0-9._-]{0,62}$)")
        }
        let key = Self.generateKey()
        let prefix = String(key.prefix(12))
        let keyName = name ?? "\(role.rawValue)\(tenant.map { "-" + $0 } ?? "")"
        let hash = Self.hash(key)
        let logger = self.logger
        return try await db.withConnection { conn in
            let rows = try await conn.query("""
                INSERT INTO api_keys (name, role, tenant, key_hash, key_prefix)
                VALUES (\(keyName), \(role.rawValue), \(tenant), \(hash), \(prefix))
                RETURNING id
                """, logger: logger)
            var id: Int64 = 0
            for try await v in rows.decode(Int64.self) { id = v }
            return NewKey(key: key, id: id, prefix: prefix)
        }
    }

    /// The key's holder, or nil when the key is unknown or revoked.
    public func authenticate(_ key: String) async throws -> Principal? {
        guard key.hasPrefix("gpl_"), key.utf8.count <= 256 else { return nil }
        let hash = Self.hash(key)
        let logger = self.logger
        return try await db.withConnection { conn in
            let rows = try await conn.query(
                "SELECT id, name, role, tenant FROM api_keys WHERE key_hash = \(hash) AND revoked_at IS NULL",
                logger: logger)
            for try await (id, name, role, tenant) in rows.decode((Int64, String, String, String?).self) {
                guard let role = Role(rawValue: role) else { return nil }
                return Principal(keyID: id, name: name, role: role, tenant: tenant)
            }
            return nil
        }
    }

    /// On a database with no keys, creates one admin key and writes it to `file` (mode 0600).
    /// Returns the key when it was created now. Safe when two instances start together.
    public func bootstrapAdminKey(file: String) async throws -> String? {
        let logger = self.logger
        return try await db.withTransaction { tx -> String? in
                try await tx.query("SELECT pg_advisory_xact_lock(\(Migrator.lockKey + 1))", logger: logger)
                var count = 0
                for try await n in try await tx.query("SELECT count(*)::int FROM api_keys", logger: logger).decode(Int.self) {
                    count = n
                }
                guard count == 0 else { return nil }
                let key = Self.generateKey()
                try await tx.query("""
                    INSERT INTO api_keys (name, role, tenant, key_hash, key_prefix)
                    VALUES ('first admin key', 'admin', NULL, \(Self.hash(key)), \(String(key.prefix(12))))
                    """, logger: logger)
                // Written before the commit: if the commit fails, the file holds a dead key and the
                // next start makes a new one; written after, a failed write would lock everyone out.
                try Self.writeSecret(key + "\n", to: file)
                return key
        }
    }

    /// Writes a secret file readable by its owner only.
    static func writeSecret(_ text: String, to path: String) throws {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw StoreError.configuration("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            throw StoreError.configuration("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

extension KeyStore {
    public struct Listed: Sendable {
        public var id: Int64
        public var name: String
        public var role: String
        public var tenant: String?
        public var prefix: String
        public var createdAt: Timestamp
        public var revokedAt: Timestamp?
    }

    /// Every key, without secrets: id, name, role, tenant, the first characters, dates.
    public func list() async throws -> [Listed] {
        let logger = self.logger
        return try await db.withConnection { conn in
            var out: [Listed] = []
            let rows = try await conn.query("""
                SELECT id, name, role, tenant, key_prefix, (extract(epoch FROM created_at) * 1000000)::bigint,
                       (extract(epoch FROM revoked_at) * 1000000)::bigint
                FROM api_keys ORDER BY id
                """, logger: logger)
            for try await (id, name, role, tenant, prefix, created, revoked) in rows.decode((Int64, String, String, String?, String, Int64, Int64?).self) {
                out.append(Listed(id: id, name: name, role: role, tenant: tenant, prefix: prefix,
                                  createdAt: Timestamp(microseconds: created), revokedAt: revoked.map(Timestamp.init(microseconds:))))
            }
            return out
        }
    }

    /// Revokes a key: it stops working at once. Returns false when there is no such key.
    public func revoke(id: Int64) async throws -> Bool {
        let logger = self.logger
        return try await db.withConnection { conn in
            var found = false
            for try await _ in try await conn.query(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = \(id) RETURNING 1", logger: logger) {
                found = true
            }
            return found
        }
    }
}
