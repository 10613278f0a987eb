import GPULedgerCore
import Logging
import PostgresNIO

/// Keeps the finished days' token shares (`token_share_cache`, sql/0013) current for a report's
/// range: each pool-day of a pool that allocates by tokens whose usage version or report epoch
/// moved since it was cached (or that never was) is recomputed in one statement, so that its rows
/// and its version come from one snapshot, with one writer at a time. `ReportSQL.base` then reads
/// such a day as one row per tenant, model and accelerator with its GPU-seconds share (`tok_gs`)
/// instead of pricing its 24 hours again.
enum TokenShareCache {
    static let lock = 7_262_020

    /// The range's whole days that are over by `now`.
    static func days(from: Timestamp, to: Timestamp, now: Timestamp) -> (Timestamp, Timestamp)? {
        let day = Timestamp.day
        let d0 = Timestamp(microseconds: (from.microseconds + day - 1).floorDivided(by: day) * day)
        let d1 = Timestamp(microseconds: min(to.microseconds, now.microseconds).floorDivided(by: day) * day)
        return d0 < d1 ? (d0, d1) : nil
    }

    /// CTE `todo`: the token pools' days in `[d0, d1)` that the cache does not hold for the
    /// current usage version and epoch, with their version.
    static func todo(_ q: inout SQLText, _ d0: Timestamp, _ d1: Timestamp) -> String {
        """
        todo AS MATERIALIZED (
            SELECT tp.name AS pool, d.day, coalesce(v.version, 0) AS version
            FROM pools tp
            CROSS JOIN \(q.days(from: d0, to: d1)) AS d
            LEFT JOIN pool_day_versions v ON v.pool = tp.name AND v.day = d.day
            WHERE tp.allocation = 'tokens'
              AND NOT EXISTS (SELECT 1 FROM token_share_days t WHERE t.pool = tp.name AND t.day = d.day
                              AND t.usage_version = coalesce(v.version, 0) AND t.epoch = (SELECT epoch FROM report_epoch))
        )
        """
    }

    static func refresh(_ db: Database, from: Timestamp, to: Timestamp, now: Timestamp) async throws {
        // (On a hot standby nothing can be written; the readers price stale days hour by hour.)
        guard !db.readsFromReplica, let (d0, d1) = days(from: from, to: to, now: now) else { return }
        let logger = db.logger
        var check = SQLText()
        let checkTodo = todo(&check, d0, d1)
        check.sql = "WITH " + checkTodo + " SELECT count(*) FROM todo"
        var update = SQLText()
        let n = update.bind(now)
        let updateTodo = todo(&update, d0, d1)
        let weights = ReportSQL.poolHourWeights("tokw", from: update.bind(d0), to: update.bind(d1))
        update.sql = """
            WITH \(updateTodo),
            \(ReportSQL.seg),
            \(ReportSQL.tcap),
            \(weights),
            tokhour AS MATERIALIZED (
                SELECT k.pool, k.hour, \(ReportSQL.paidGPUSeconds("k", now: n))::numeric(1000, 30) / nullif(k.wsum, 0) AS per_weight
                FROM tokw k WHERE (k.pool, date_trunc('day', k.hour, 'UTC')) IN (SELECT pool, day FROM todo)
            ),
            gone_rows AS (DELETE FROM token_share_cache c USING todo t WHERE c.pool = t.pool AND c.day = t.day),
            gone_days AS (DELETE FROM token_share_days d USING todo t WHERE d.pool = t.pool AND d.day = t.day),
            rows AS (
                INSERT INTO token_share_cache (pool, day, tenant, model, accelerator, requests, errors, gpu_seconds, input_tokens,
                                               output_tokens, cached_input_tokens, charge_gs)
                SELECT h.pool, t.day, h.tenant, h.model, h.accelerator, sum(h.requests), sum(h.errors), sum(h.gpu_seconds),
                       sum(h.input_tokens), sum(h.output_tokens), sum(h.cached_input_tokens),
                       -- (A record of another accelerator than its pool's is priced by its own
                       -- GPU-seconds, at that accelerator's default rate: no share.)
                       CASE WHEN bool_or(tp.name IS NOT NULL) THEN sum(coalesce(th.per_weight * \(ReportSQL.weight("h", "tp")), 0)) END
                FROM todo t
                JOIN usage_hourly_live h ON h.pool = t.pool AND h.hour >= t.day AND h.hour < t.day + interval '1 day'
                LEFT JOIN pools tp ON tp.name = h.pool AND tp.accelerator = h.accelerator
                LEFT JOIN tokhour th ON tp.name IS NOT NULL AND th.pool = h.pool AND th.hour = h.hour
                GROUP BY h.pool, t.day, h.tenant, h.model, h.accelerator
            )
            INSERT INTO token_share_days (pool, day, usage_version, epoch)
            SELECT pool, day, version, (SELECT epoch FROM report_epoch) FROM todo
            """
        let checkQuery = check.query, updateQuery = update.query
        // The check outside a transaction: most reports find nothing stale (or no tokens pool).
        let stale = try await db.withConnection { conn in
            var n: Int64 = 0
            for try await c in try await conn.query(checkQuery, logger: logger).decode(Int64.self) { n = c }
            return n
        }
        guard stale > 0 else { return }
        try await db.withTransaction { tx in
            try await ReportSQL.noJIT(tx, logger)
            try await tx.query("SELECT pg_advisory_xact_lock(\(lock))", logger: logger)
            // Derived data, checked against versions on every read: losing the last write in a
            // crash only means recomputing it.
            try await tx.query("SET LOCAL synchronous_commit = off", logger: logger)
            try await tx.query(updateQuery, logger: logger)
        }
    }
}
