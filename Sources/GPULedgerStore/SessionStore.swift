import Foundation
import GPULedgerCore
import Logging
import NIOCore
import PostgresNIO

/// Sessions of the web console (`sql/0009`): a signed-in API key behind a cookie.
public struct SessionStore: Sendable {
    public struct Session: Sendable {
        public var principal: Principal
        /// The token every form of the session carries (cross-site request forgery).
        public var csrfToken: String
        public var expiresAt: Timestamp
    }

    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) { self.db = database }

    /// 32 random bytes from the system's secure generator, as hex (as API keys are made).
    public static func randomToken() -> String { KeyStore.randomHex() }

    /// Stored like API keys: SHA-256 only.
    static func hash(_ token: String) -> ByteBuffer { KeyStore.hash(token) }

    /// A new session for `principal`'s key, lasting `lifetime`; returns the cookie's token (only its
    /// hash is stored) and the session. Sessions expired by `now` are removed on the way.
    public func create(principal: Principal, lifetime: Duration, now: Timestamp) async throws -> (token: String, session: Session) {
        let keyID = principal.keyID
        let token = Self.randomToken(), csrf = Self.randomToken()
        let expires = now.adding(seconds: lifetime.components.seconds)
        let hash = Self.hash(token), text = expires.rfc3339, nowText = now.rfc3339
        let logger = self.logger
        try await db.withConnection { conn in
            try await conn.query("DELETE FROM console_sessions WHERE expires_at < \(nowText)::timestamptz", logger: logger)
            _ = try await conn.query("""
                INSERT INTO console_sessions (token_hash, key_id, csrf_token, expires_at) VALUES (\(hash), \(keyID), \(csrf), \(text)::timestamptz)
                """, logger: logger)
        }
        return (token, Session(principal: principal, csrfToken: csrf, expiresAt: expires))
    }

    /// The session of a cookie's token: nil when unknown, expired at `now`, or its key was revoked.
    public func find(_ token: String, now: Timestamp) async throws -> Session? {
        guard token.utf8.count == 64, token.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else { return nil }
        let hash = Self.hash(token), nowText = now.rfc3339
        let logger = self.logger
        return try await db.withConnection { conn in
            for try await (id, name, role, tenant, csrf, expires) in try await conn.query("""
                SELECT k.id, k.name, k.role, k.tenant, s.csrf_token, (extract(epoch FROM s.expires_at) * 1000000)::bigint
                FROM console_sessions s JOIN api_keys k ON k.id = s.key_id
                WHERE s.token_hash = \(hash) AND s.expires_at > \(nowText)::timestamptz AND k.revoked_at IS NULL
                """, logger: logger).decode((Int64, String, String, String?, String, Int64).self) {
                guard let role = Role(rawValue: role) else { return nil }
                return Session(principal: Principal(keyID: id, name: name, role: role, tenant: tenant), csrfToken: csrf,
                               expiresAt: Timestamp(microseconds: expires))
            }
            return nil
        }
    }

    /// Ends a session (sign-out).
    public func delete(_ token: String) async throws {
        let hash = Self.hash(token)
        let logger = self.logger
        try await db.withConnection { conn in
            _ = try await conn.query("DELETE FROM console_sessions WHERE token_hash = \(hash)", logger: logger)
        }
    }
}
