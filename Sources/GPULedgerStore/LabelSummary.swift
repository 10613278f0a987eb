import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

/// The summary by label (`usage_label_hourly` and `label_hours`, sql/0017): recomputed per hour
/// by `HourSummaryKeeper`, read by `ReportSQL.base` for `group_by=label:KEY`.
enum LabelSummary {
    /// Values a key may have in an hour and still be summarized there.
    static let valueCap = 1000

    /// Replaces the label rows of `hours` (sorted hour starts, µs; `runs` the same as ranges)
    /// with those of their records now, in the caller's transaction.
    static func replace(_ conn: PostgresConnection, hours: [Int64], runs: [(Timestamp, Timestamp)], logger: Logger) async throws {
        try await conn.query("""
            DELETE FROM usage_label_hourly WHERE hour IN (SELECT 'epoch'::timestamptz + x * interval '1 microsecond' FROM unnest(\(hours)::bigint[]) x)
            """, logger: logger)
        try await conn.query("""
            DELETE FROM label_hours WHERE hour IN (SELECT 'epoch'::timestamptz + x * interval '1 microsecond' FROM unnest(\(hours)::bigint[]) x)
            """, logger: logger)
        for (s, e) in runs {
            try await conn.query("""
                WITH r AS MATERIALIZED (
                    SELECT date_trunc('hour', started_at, 'UTC') AS hour, tenant, model, accelerator, coalesce(pool, '') AS pool, status,
                           gpu_seconds, input_tokens, output_tokens, cached_input_tokens, labels
                    FROM usage_records WHERE started_at >= \(s.rfc3339)::timestamptz AND started_at < \(e.rfc3339)::timestamptz
                ),
                kv AS MATERIALIZED (
                    SELECT r.hour, r.tenant, r.model, r.accelerator, r.pool, r.status, r.gpu_seconds, r.input_tokens, r.output_tokens,
                           r.cached_input_tokens, l.key, l.value
                    FROM r CROSS JOIN LATERAL jsonb_each_text(r.labels) l
                ),
                wide AS (SELECT hour, key FROM kv GROUP BY hour, key HAVING count(DISTINCT value) > \(Self.valueCap)),
                hours AS (
                    INSERT INTO label_hours (hour, tenant, requests, errors, input_tokens, output_tokens, unsummarized)
                    SELECT r.hour, r.tenant, count(*), count(*) FILTER (WHERE r.status = 'error'), sum(r.input_tokens), sum(r.output_tokens),
                           coalesce((SELECT array_agg(w.key ORDER BY w.key) FROM wide w WHERE w.hour = r.hour), '{}')
                    FROM r GROUP BY r.hour, r.tenant
                    RETURNING 1
                )
                INSERT INTO usage_label_hourly (key, hour, tenant, model, accelerator, pool, value, requests, errors, gpu_seconds,
                                                input_tokens, output_tokens, cached_input_tokens)
                SELECT key, hour, tenant, model, accelerator, pool, value, count(*), count(*) FILTER (WHERE status = 'error'),
                       coalesce(sum(gpu_seconds), 0), sum(input_tokens), sum(output_tokens), coalesce(sum(cached_input_tokens), 0)
                FROM kv WHERE (hour, key) NOT IN (SELECT hour, key FROM wide)
                GROUP BY 1, 2, 3, 4, 5, 6, 7
                ORDER BY 1, 2, 3, 4, 5, 6, 7
                """, logger: logger)
        }
        // The days of those hours, from their hours' rows (all current in this snapshot).
        let days = Array(Set(hours.map { $0.floorDivided(by: Timestamp.day) * Timestamp.day })).sorted()
        let theDays = "(SELECT 'epoch'::timestamptz + x * interval '1 microsecond' FROM unnest($1::bigint[]) x)"
        func run(_ sql: String) async throws {
            var binds = PostgresBindings()
            binds.append(days)
            try await conn.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        }
        try await run("DELETE FROM usage_label_daily WHERE day IN \(theDays)")
        try await run("DELETE FROM label_days WHERE day IN \(theDays)")
        try await run("""
            INSERT INTO usage_label_daily (key, day, tenant, model, accelerator, pool, value, requests, errors, gpu_seconds, input_tokens,
                                           output_tokens, cached_input_tokens)
            SELECT key, d.day, tenant, model, accelerator, pool, value, sum(requests), sum(errors), sum(gpu_seconds), sum(input_tokens),
                   sum(output_tokens), sum(cached_input_tokens)
            FROM (SELECT 'epoch'::timestamptz + x * interval '1 microsecond' AS day FROM unnest($1::bigint[]) x) d
            JOIN usage_label_hourly h ON h.hour >= d.day AND h.hour < d.day + interval '1 day'
            GROUP BY 1, 2, 3, 4, 5, 6, 7
            ORDER BY 1, 2, 3, 4, 5, 6, 7
            """)
        try await run("""
            INSERT INTO label_days (day, tenant, requests, errors, input_tokens, output_tokens, unsummarized)
            SELECT d.day, h.tenant, sum(h.requests), sum(h.errors), sum(h.input_tokens), sum(h.output_tokens),
                   coalesce((SELECT array_agg(DISTINCT k ORDER BY k) FROM label_hours x CROSS JOIN LATERAL unnest(x.unsummarized) k
                             WHERE x.tenant = h.tenant AND x.hour >= d.day AND x.hour < d.day + interval '1 day'), '{}')
            FROM (SELECT 'epoch'::timestamptz + x * interval '1 microsecond' AS day FROM unnest($1::bigint[]) x) d
            JOIN label_hours h ON h.hour >= d.day AND h.hour < d.day + interval '1 day'
            GROUP BY d.day, h.tenant
            """)
    }

    /// The rows of `[h0, h1)` (SQL for whole-hour times; `[d0, d1)` its whole days, empty when
    /// d0 ≥ d1) grouped by the label bound as `key` (SQL), as `ReportSQL.base` returns them (its
    /// columns, the value as `l0`), from the label summary where it is current, else the records:
    /// - a whole day and tenant whose `label_days` sums equal `usage_daily_live`'s (every hour of
    ///   it kept since its records last changed), inside which no rate changes: its daily label
    ///   rows, and its records without the key as the day's sums less those; its rows of pools
    ///   that allocate by tokens from its hourly rows the same way (they split each hour);
    /// - any other hour and tenant (`lhours`: the hours outside such days) whose `label_hours`
    ///   sums equal `usage_hourly_live`'s: its hourly label rows, the same way;
    /// - the rest (the CTE `lstale`) from `rawStale`, SQL for their records.
    /// `filters`: as base's; `tenant`: the tenant filter alone (SQL), if any.
    static func rows(key: String, h0: String, h1: String, d0: String, d1: String, filters: String, tenant: String?, rawStale: String) -> String {
        let sums = "requests, errors, gpu_seconds, input_tokens, output_tokens, cached_input_tokens"
        func summed(_ t: String, _ time: String) -> String {
            "\(time), tenant, model, accelerator, pool, sum(requests) AS requests, sum(errors) AS errors, sum(gpu_seconds) AS gpu_seconds, "
                + "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cached_input_tokens) AS cached_input_tokens FROM \(t)"
        }
        /// Summary rows `rows` (a label table) and the records without the key: `totals` (a
        /// summary) less those, over the rows `scope` admits; `time` is the tables' time column.
        func part(labels: String, totals: String, time: String, scope: String) -> String {
            """
            SELECT \(time) AS hour, tenant, model, accelerator, pool, \(sums), value AS l0, NULL::numeric AS tok_gs FROM \(labels)
            WHERE key = \(key) AND \(scope)\(filters)
            UNION ALL
            SELECT h.t, h.tenant, h.model, h.accelerator, h.pool, h.requests - coalesce(l.requests, 0), h.errors - coalesce(l.errors, 0),
                   h.gpu_seconds - coalesce(l.gpu_seconds, 0), h.input_tokens - coalesce(l.input_tokens, 0),
                   h.output_tokens - coalesce(l.output_tokens, 0), h.cached_input_tokens - coalesce(l.cached_input_tokens, 0),
                   NULL::text AS l0, NULL::numeric AS tok_gs
            FROM (SELECT \(summed(totals, "\(time) AS t")) WHERE \(scope)\(filters) GROUP BY 1, 2, 3, 4, 5) h
            LEFT JOIN (SELECT \(summed(labels, "\(time) AS t")) WHERE key = \(key) AND \(scope)\(filters) GROUP BY 1, 2, 3, 4, 5) l
              ON l.t = h.t AND l.tenant = h.tenant AND l.model = h.model AND l.accelerator = h.accelerator AND l.pool = h.pool
            WHERE h.requests - coalesce(l.requests, 0) <> 0
            """
        }
        let t = tenant.map { " AND tenant = \($0)" } ?? ""
        let covered = "(date_trunc('day', hour, 'UTC'), tenant) IN (SELECT day, tenant FROM ldvalid)"
        return """
            WITH ldsums AS MATERIALIZED (
                SELECT day, tenant, sum(requests) AS r, sum(errors) AS e, sum(input_tokens) AS i, sum(output_tokens) AS o
                FROM usage_daily_live WHERE day >= \(d0) AND day < \(d1) AND day NOT IN (SELECT day FROM split)\(t)
                GROUP BY day, tenant HAVING sum(requests) <> 0
            ),
            ldvalid AS MATERIALIZED (
                SELECT s.day, s.tenant FROM ldsums s
                JOIN label_days ld ON ld.day = s.day AND ld.tenant = s.tenant AND ld.requests = s.r AND ld.errors = s.e
                                  AND ld.input_tokens = s.i AND ld.output_tokens = s.o
                WHERE ld.day >= \(d0) AND ld.day < \(d1)\(tenant.map { " AND ld.tenant = \($0)" } ?? "") AND NOT (\(key) = ANY (ld.unsummarized))
            ),
            -- Hour ranges read hour by hour: outside the whole days, and the whole days some tenant
            -- of which is not read by day (or inside which a rate changes).
            lhours AS MATERIALIZED (
                SELECT \(h0)::timestamptz AS s, least(\(d0), \(h1))::timestamptz AS e WHERE \(h0) < least(\(d0), \(h1))
                UNION ALL
                SELECT \(d1), \(h1) WHERE \(d0) <= \(d1) AND \(d1) < \(h1)
                UNION ALL
                SELECT DISTINCT s.day, s.day + interval '1 day' FROM ldsums s WHERE (s.day, s.tenant) NOT IN (SELECT day, tenant FROM ldvalid)
                UNION ALL
                SELECT day, day + interval '1 day' FROM split WHERE day >= \(d0) AND day < \(d1)
            ),
            lsums AS MATERIALIZED (
                SELECT u.hour, u.tenant, sum(u.requests) AS r, sum(u.errors) AS e, sum(u.input_tokens) AS i, sum(u.output_tokens) AS o
                FROM lhours w CROSS JOIN LATERAL (SELECT hour, tenant, requests, errors, input_tokens, output_tokens FROM usage_hourly_live
                                                  WHERE hour >= w.s AND hour < w.e\(t) OFFSET 0) u
                WHERE (date_trunc('day', u.hour, 'UTC'), u.tenant) NOT IN (SELECT day, tenant FROM ldvalid)
                GROUP BY u.hour, u.tenant HAVING sum(u.requests) <> 0
            ),
            lvalid AS MATERIALIZED (
                SELECT s.hour, s.tenant FROM lsums s
                JOIN label_hours lh ON lh.hour = s.hour AND lh.tenant = s.tenant AND lh.requests = s.r AND lh.errors = s.e
                                   AND lh.input_tokens = s.i AND lh.output_tokens = s.o
                WHERE NOT (\(key) = ANY (lh.unsummarized))
            ),
            lstale AS MATERIALIZED (SELECT hour, tenant FROM lsums EXCEPT SELECT hour, tenant FROM lvalid)
            \(part(labels: "usage_label_daily", totals: "usage_daily_live", time: "day",
                   scope: "day >= \(d0) AND day < \(d1) AND (day, tenant) IN (SELECT day, tenant FROM ldvalid) AND pool NOT IN (SELECT name FROM tokpools)"))
            UNION ALL
            \(part(labels: "usage_label_hourly", totals: "usage_hourly_live", time: "hour",
                   scope: "hour >= \(h0) AND hour < \(h1) AND (hour, tenant) IN (SELECT hour, tenant FROM lvalid)"))
            UNION ALL
            \(part(labels: "usage_label_hourly", totals: "usage_hourly_live", time: "hour",
                   scope: "EXISTS (SELECT 1 FROM tokpools) AND hour >= \(d0) AND hour < \(d1) AND pool IN (SELECT name FROM tokpools) AND \(covered)"))
            UNION ALL
            \(rawStale)
            """
    }
}
