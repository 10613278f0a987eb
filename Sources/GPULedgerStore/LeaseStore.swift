import GPULedgerCore
import Logging
import PostgresNIO

/// The background lease (sql/0015): which of the replicas on one database runs the background
/// jobs, and how often each job ran on each replica.
public struct LeaseStore: Sendable {
    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) { self.db = database }

    /// A lease as the database holds it.
    public struct Lease: Sendable, Equatable {
        public var holder: String
        public var term: Int64
        /// Seconds until it expires, by the database's clock (negative: lapsed).
        public var expiresIn: Double
    }

    /// Takes the lease `name` for `holder` if it is free, lapsed or already `holder`'s, for `ttl`
    /// from the database's now; the lease as it stands afterwards (held by someone else when this
    /// did not take it). One statement: two replicas asking together cannot both get it.
    public func acquireOrRenew(_ name: String, holder: String, ttl: Duration) async throws -> Lease {
        let ttlMicros = ttl.components.seconds * 1_000_000 + ttl.components.attoseconds / 1_000_000_000_000
        return try await db.withConnection { [logger] conn in
            try await conn.withTransaction(logger: logger) { conn in
                try await Self.noFlushWait(conn, logger)
                let rows = try await conn.query("""
                    WITH taken AS (
                        INSERT INTO background_leases AS l (name, holder, term, acquired_at, renewed_at, expires_at)
                        VALUES (\(name), \(holder), 1, now(), now(), now() + \(ttlMicros) * interval '1 microsecond')
                        ON CONFLICT (name) DO UPDATE SET
                            holder = EXCLUDED.holder,
                            term = CASE WHEN l.holder = EXCLUDED.holder THEN l.term ELSE l.term + 1 END,
                            acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE now() END,
                            renewed_at = now(),
                            expires_at = EXCLUDED.expires_at
                        WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()
                        RETURNING holder, term, extract(epoch FROM expires_at - now())::float8
                    )
                    SELECT holder, term, expires_in FROM (
                        SELECT holder, term, expires_in, 0 AS o FROM taken AS t(holder, term, expires_in)
                        UNION ALL
                        SELECT holder, term, extract(epoch FROM expires_at - now())::float8, 1 FROM background_leases WHERE name = \(name)
                    ) x ORDER BY o LIMIT 1
                    """, logger: logger)
                // (Every row read before the transaction commits: a COMMIT behind an unfinished row
                // stream waits for it forever.)
                var lease: Lease?
                for try await (h, t, e) in rows.decode((String, Int64, Double).self) { lease = Lease(holder: h, term: t, expiresIn: e) }
                guard let lease else { throw StoreError.database("the lease \(name) could be neither read nor taken") }
                return lease
            }
        }
    }

    /// A renewal must not wait for the WAL to reach the disk: under a heavy ingest, commits waited
    /// seconds for the flush on a busy disk and the lease lapsed and moved (scripts/ha-drill). What
    /// a crash could lose is the last fraction of a second of renewals, after which a replica takes
    /// the lease anew. `SET LOCAL`: for this transaction only, never for the ingest that may use
    /// the same connection next.
    static func noFlushWait(_ conn: PostgresConnection, _ logger: Logger) async throws {
        try await conn.query("SET LOCAL synchronous_commit = off", logger: logger)
    }

    /// Gives the lease up if `holder` has it (a replica stopping), so another takes over at once.
    public func release(_ name: String, holder: String) async throws {
        _ = try await db.withConnection { [logger] conn in
            try await conn.query("""
                UPDATE background_leases SET expires_at = now() - interval '1 microsecond'
                WHERE name = \(name) AND holder = \(holder)
                """, logger: logger)
        }
    }

    /// The lease `name`, if anyone ever held it.
    public func lease(_ name: String) async throws -> Lease? {
        try await db.withConnection { [logger] conn in
            let rows = try await conn.query("""
                SELECT holder, term, extract(epoch FROM expires_at - now())::float8 FROM background_leases WHERE name = \(name)
                """, logger: logger)
            var lease: Lease?
            for try await (h, t, e) in rows.decode((String, Int64, Double).self) { lease = Lease(holder: h, term: t, expiresIn: e) }
            return lease
        }
    }

    /// Counts one run of `job` by `holder`.
    public func countRun(_ job: String, holder: String) async throws {
        try await db.withConnection { [logger] conn in
            try await conn.withTransaction(logger: logger) { conn in
                try await Self.noFlushWait(conn, logger)
                try await conn.query("""
                    INSERT INTO background_runs AS r (job, holder, runs, first_at, last_at) VALUES (\(job), \(holder), 1, now(), now())
                    ON CONFLICT (job, holder) DO UPDATE SET runs = r.runs + 1, last_at = now()
                    """, logger: logger)
            }
        }
    }

    /// One job's runs on one replica.
    public struct Runs: Sendable, Equatable {
        public var job: String
        public var holder: String
        public var runs: Int64
        /// Seconds since its last run, by the database's clock.
        public var secondsSinceLast: Double
    }

    /// Every job's runs per replica.
    public func runs() async throws -> [Runs] {
        try await db.withConnection { [logger] conn in
            let rows = try await conn.query("""
                SELECT job, holder, runs, extract(epoch FROM now() - last_at)::float8 FROM background_runs ORDER BY job, holder
                """, logger: logger)
            var out: [Runs] = []
            for try await (j, h, n, s) in rows.decode((String, String, Int64, Double).self) { out.append(Runs(job: j, holder: h, runs: n, secondsSinceLast: s)) }
            return out
        }
    }
}
