import GPULedgerCore
import Logging
import PostgresNIO

/// SQL text with its bound values (all text, cast in the SQL where needed): report queries are
/// built from fixed fragments, and every value from a request becomes a `$n` binding.
struct SQLText {
    var sql = ""
    var binds = PostgresBindings()
    private var count = 0

    /// Binds `value` and returns its placeholder.
    mutating func bind(_ value: String) -> String {
        binds.append(value)
        count += 1
        return "$\(count)"
    }

    mutating func bind(_ t: Timestamp) -> String { bind(t.rfc3339) + "::timestamptz" }

    /// The days `from`, `from` + 24 h, … that end by `to` (those of
    /// `generate_series(from, to - interval '1 day', interval '1 day')` in UTC) as a set of one
    /// column `day`, for `CROSS JOIN \(q.days(from:to:)) AS d`: one bound `bigint[]` of their
    /// starts. PostgreSQL counts the elements of an array constant, where it guesses 1,000 rows
    /// for a `generate_series` of timestamps: with that guess a month's chargeback was planned
    /// for 45,000 usage rows instead of 9,600, and sorted them where hashing is faster (README,
    /// "Report speed").
    mutating func days(from: Timestamp, to: Timestamp) -> String {
        let starts = Array(stride(from: from.microseconds, through: to.microseconds - Timestamp.day, by: Int(Timestamp.day)))
        binds.append(starts)
        count += 1
        return "(SELECT 'epoch'::timestamptz + x * interval '1 microsecond' AS day FROM unnest($\(count)::bigint[]) AS x)"
    }

    /// Binds a list of texts as one `text[]`.
    mutating func bind(_ values: [String]) -> String {
        binds.append(values)
        count += 1
        return "$\(count)::text[]"
    }

    var query: PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}

/// What every report query (costs, chargeback, forecasts, stats) is built from: the usage rows
/// of a time range (rollups where whole, raw records at the edges) and how they are priced.
enum ReportSQL {
    /// Report queries are short and their row estimates (generate_series) large: PostgreSQL's
    /// JIT would spend a third of a second compiling each one.
    static func noJIT(_ conn: PostgresConnection, _ logger: Logger) async throws {
        try await conn.query("SET jit = off", logger: logger)
    }

    /// The rows in `[from, to)` (`hour` is the start of the row's hour or day): from the daily
    /// rollup for whole days, the hourly one for whole hours, the raw records otherwise.
    /// Columns: hour, tenant, model, accelerator, pool ('' for none), requests, errors,
    /// gpu_seconds, input_tokens, output_tokens, then one `l<i>` per label key. `fleet`: the
    /// caller needs no tenant (no tenant filter or group), so whole days come from
    /// `usage_daily_fleet`, with tenant ''.
    static func base(_ q: inout SQLText, from: Timestamp, to: Timestamp, labels: [String] = [],
                     tenant: String? = nil, model: String? = nil, accelerator: String? = nil, pool: String? = nil,
                     rawOnly: Bool = false, hourly: Bool = false, fleet: Bool = false, tokenCacheUntil: Timestamp? = nil) -> String {
        var filters = ""
        if let tenant { filters += " AND tenant = \(q.bind(tenant))" }
        if let model { filters += " AND model = \(q.bind(model))" }
        if let accelerator { filters += " AND accelerator = \(q.bind(accelerator))" }
        if let pool { filters += " AND coalesce(pool, '') = \(q.bind(pool))" }
        var labelColumns = ""
        for (i, key) in labels.enumerated() { labelColumns += ", labels ->> \(q.bind(key)) AS l\(i)" }
        let labelGroup = labels.indices.map { ", l\($0)" }.joined()
        func raw(_ ranges: [(Timestamp, Timestamp)]) -> String {
            let cond = ranges.map { "(started_at >= \(q.bind($0.0)) AND started_at < \(q.bind($0.1)))" }.joined(separator: " OR ")
            return """
                SELECT hour, tenant, model, accelerator, pool, count(*) AS requests, count(*) FILTER (WHERE status = 'error') AS errors,
                       coalesce(sum(gpu_seconds), 0) AS gpu_seconds, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                       coalesce(sum(cached_input_tokens), 0) AS cached_input_tokens\(labelGroup), NULL::numeric AS tok_gs
                FROM (SELECT date_trunc('hour', started_at, 'UTC') AS hour, tenant, model, accelerator, coalesce(pool, '') AS pool,
                             status, gpu_seconds, input_tokens, output_tokens, cached_input_tokens\(labelColumns)
                      FROM usage_records WHERE (\(cond))\(filters)) r
                GROUP BY hour, tenant, model, accelerator, pool\(labelGroup)
                """
        }
        guard from < to else { return raw([(from, from)]) }
        let hour = Timestamp.hour, day = Timestamp.day
        func ceil(_ t: Timestamp, _ unit: Int64) -> Timestamp { Timestamp(microseconds: (t.microseconds + unit - 1).floorDivided(by: unit) * unit) }
        func floor(_ t: Timestamp, _ unit: Int64) -> Timestamp { Timestamp(microseconds: t.microseconds.floorDivided(by: unit) * unit) }
        let h0 = ceil(from, hour), h1 = floor(to, hour)
        var edges: [(Timestamp, Timestamp)] = []
        if from < h0 { edges.append((from, h0)) }
        if h1 < to { edges.append((h1, to)) }
        // One label: whole hours from the label summary where it is current (`LabelSummary`).
        if !rawOnly && labels.count == 1 && h0 < h1 {
            let key = q.bind(labels[0])
            // Each stale hour's records read once, by time alone (a tenant in that scan made
            // PostgreSQL AND the hour with the tenant's whole key range), then its stale tenants.
            let stale = """
                SELECT hour, tenant, model, accelerator, pool, count(*) AS requests, count(*) FILTER (WHERE status = 'error') AS errors,
                       coalesce(sum(gpu_seconds), 0) AS gpu_seconds, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                       coalesce(sum(cached_input_tokens), 0) AS cached_input_tokens, l0, NULL::numeric AS tok_gs
                FROM (SELECT date_trunc('hour', started_at, 'UTC') AS hour, tenant, model, accelerator, coalesce(pool, '') AS pool,
                             status, gpu_seconds, input_tokens, output_tokens, cached_input_tokens, labels ->> \(key) AS l0
                      FROM (SELECT DISTINCT hour AS stale_hour FROM lstale) s
                      CROSS JOIN LATERAL (SELECT * FROM usage_records
                                          WHERE started_at >= s.stale_hour AND started_at < s.stale_hour + interval '1 hour' OFFSET 0) u
                      WHERE (date_trunc('hour', started_at, 'UTC'), tenant) IN (SELECT hour, tenant FROM lstale)\(filters)) r
                GROUP BY hour, tenant, model, accelerator, pool, l0
                """
            let rows = LabelSummary.rows(key: key, h0: q.bind(h0), h1: q.bind(h1), d0: q.bind(ceil(h0, day)), d1: q.bind(floor(h1, day)),
                                         filters: filters, tenant: tenant.map { q.bind($0) }, rawStale: stale)
            return edges.isEmpty ? rows : rows + "\nUNION ALL\n" + raw(edges)
        }
        if rawOnly || !labels.isEmpty || h0 >= h1 { return raw([(from, to)]) }
        let summed = "tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens, cached_input_tokens"
        let columns = summed + ", NULL::numeric AS tok_gs"
        var parts: [String] = []
        let d0 = ceil(h0, day), d1 = floor(h1, day)
        if hourly || d0 >= d1 {
            parts.append("SELECT hour, \(columns) FROM usage_hourly_live WHERE hour >= \(q.bind(h0)) AND hour < \(q.bind(h1))\(filters)")
        } else {
            // Whole days from the daily rollup, except days inside which a rate changes (`split`):
            // those, and the whole hours before and after the whole days, from the hourly one.
            let (bd0, bd1) = (q.bind(d0), q.bind(d1))
            let daily = fleet && tenant == nil
                ? "SELECT day AS hour, ''::text AS tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens, cached_input_tokens, NULL::numeric AS tok_gs FROM usage_daily_fleet_live"
                : "SELECT day AS hour, \(columns) FROM usage_daily_live"
            // A pool that allocates by tokens splits each hour by that hour's weights: its finished
            // days come from the cache of their token shares (`token_share_cache`, priced already
            // in `tok_gs`) where it is valid, its other hours from the hourly summary.
            parts.append("""
                \(daily)
                WHERE day >= \(bd0) AND day < \(bd1) AND day NOT IN (SELECT day FROM split) AND pool NOT IN (SELECT name FROM tokpools)\(filters)
                """)
            // (Only days over by `tokenCacheUntil`, the caller's "now": a day still running is
            // priced hour by hour, its capacity counted up to now.)
            let cached = tokenCacheUntil.map { "(SELECT pool, day FROM tokvalid WHERE day + interval '1 day' <= \(q.bind($0)))" }
            if let cached {
                parts.append("""
                    SELECT day AS hour, \(summed), charge_gs AS tok_gs FROM token_share_cache
                    WHERE day >= \(bd0) AND day < \(bd1) AND day NOT IN (SELECT day FROM split)
                      AND (pool, day) IN \(cached)\(filters)
                    """)
            }
            // The other days of such pools, day by day (each an index range of the pool's hours).
            parts.append("""
                SELECT h.hour, \(summed.split(separator: ",").map { "h." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")), NULL::numeric AS tok_gs
                FROM tokpools tpn
                CROSS JOIN \(q.days(from: d0, to: d1)) AS d
                CROSS JOIN LATERAL (SELECT * FROM usage_hourly_live
                                    WHERE pool = tpn.name AND hour >= d.day AND hour < d.day + interval '1 day'\(filters) OFFSET 0) h
                WHERE d.day NOT IN (SELECT day FROM split)\(cached.map { " AND (tpn.name, d.day) NOT IN \($0)" } ?? "")
                """)
            // (Each part its own index range scan: an OR of ranges would read the whole table.)
            parts.append("""
                SELECT h.hour, \(summed.split(separator: ",").map { "h." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")), NULL::numeric AS tok_gs
                FROM split s
                CROSS JOIN LATERAL (SELECT * FROM usage_hourly_live WHERE hour >= s.day AND hour < s.day + interval '1 day'\(filters) OFFSET 0) h
                WHERE s.day >= \(bd0) AND s.day < \(bd1)
                """)
            if h0 < d0 { parts.append("SELECT hour, \(columns) FROM usage_hourly_live WHERE hour >= \(q.bind(h0)) AND hour < \(bd0)\(filters)") }
            if d1 < h1 { parts.append("SELECT hour, \(columns) FROM usage_hourly_live WHERE hour >= \(bd1) AND hour < \(q.bind(h1))\(filters)") }
        }
        if !edges.isEmpty { parts.append(raw(edges)) }
        return parts.joined(separator: "\nUNION ALL\n")
    }

    /// The days inside which some rate changes (not at midnight): daily rows can't be priced
    /// with one rate there. And the pools that allocate by tokens (`tokpools`).
    static let split = """
        split AS (
            SELECT DISTINCT date_trunc('day', effective_from, 'UTC') AS day FROM rates
            WHERE retired_at IS NULL AND effective_from <> date_trunc('day', effective_from, 'UTC')
        ),
        tokpools AS (SELECT name FROM pools WHERE allocation = 'tokens'),
        -- The pool-days whose token shares (every row of the pool-day) the cache holds for the
        -- current usage and pricing.
        tokvalid AS MATERIALIZED (
            SELECT d.pool, d.day FROM token_share_days d
            JOIN pools p ON p.name = d.pool AND p.allocation = 'tokens'
            LEFT JOIN pool_day_versions v ON v.pool = d.pool AND v.day = d.day
            WHERE d.usage_version = coalesce(v.version, 0) AND d.epoch = (SELECT epoch FROM report_epoch)
        )
        """

    /// A row's token weight in its pool `p` (contract section 5), from the columns of `u`.
    static func weight(_ u: String, _ p: String) -> String {
        "(\(p).w_input * (\(u).input_tokens - \(u).cached_input_tokens) + \(p).w_cached_input * \(u).cached_input_tokens + \(p).w_output * \(u).output_tokens)"
    }

    /// The token weight of the pool-hour `k.pool`, `k.hour` (columns of a row in scope), over all
    /// of the hour's records on the pool's accelerator: the per-pool-hour sums, looked up by their
    /// whole key, plus the deltas not folded yet. (For one pool-hour; a range's come from
    /// `poolHourWeights`.)
    static func poolHourWeight(_ k: String) -> String {
        """
        (SELECT coalesce(sum(\(weight("hw", "hp"))), 0)
         FROM pools hp
         CROSS JOIN LATERAL (
               SELECT h.input_tokens, h.cached_input_tokens, h.output_tokens FROM usage_pool_hourly h
               WHERE h.pool = hp.name AND h.accelerator = hp.accelerator AND h.hour = \(k).hour
               UNION ALL
               SELECT d.input_tokens, d.cached_input_tokens, d.output_tokens FROM usage_delta d
               WHERE d.pool = hp.name AND d.accelerator = hp.accelerator AND d.hour = \(k).hour) hw
         WHERE hp.name = \(k).pool)
        """
    }

    /// CTE `name`: the token weight of every pool-hour of the pools that allocate by tokens with
    /// records in `[h0, h1)` (SQL for times): one range scan of the per-pool-hour sums per pool,
    /// plus the deltas not folded yet. Columns pool, hour, wsum.
    static func poolHourWeights(_ name: String, from h0: String, to h1: String) -> String {
        """
        \(name) AS MATERIALIZED (
            SELECT tp.name AS pool, w.hour, sum(\(weight("w", "tp"))) AS wsum
            FROM pools tp
            CROSS JOIN LATERAL (
                SELECT h.hour, h.input_tokens, h.cached_input_tokens, h.output_tokens FROM usage_pool_hourly h
                WHERE h.pool = tp.name AND h.accelerator = tp.accelerator AND h.hour >= \(h0) AND h.hour < \(h1)
                UNION ALL
                SELECT d.hour, d.input_tokens, d.cached_input_tokens, d.output_tokens FROM usage_delta d
                WHERE d.pool = tp.name AND d.accelerator = tp.accelerator AND d.hour >= \(h0) AND d.hour < \(h1)) w
            WHERE tp.allocation = 'tokens'
            GROUP BY tp.name, w.hour
        )
        """
    }

    /// The GPU-seconds a pool paid for in the hour `k.pool`, `k.hour` (columns of a row in
    /// scope), counting capacity up to `now` (SQL for a time), from the CTE `tcap`.
    static func paidGPUSeconds(_ k: String, now: String) -> String {
        """
        (SELECT coalesce(sum(c.gpus * greatest(extract(epoch FROM least(c.e, \(k).hour + interval '1 hour', \(now)) - greatest(c.s, \(k).hour)), 0)), 0)
         FROM tcap c WHERE c.pool = \(k).pool AND c.gpus > 0 AND c.s < \(k).hour + interval '1 hour' AND c.e > \(k).hour)
        """
    }

    /// CTE `tcap`: each capacity event's span (`s` to the next event or forever) and GPUs.
    static let tcap = "tcap AS (SELECT pool, at AS s, coalesce(lead(at) OVER (PARTITION BY pool ORDER BY at), 'infinity') AS e, gpus FROM pool_capacity)"

    /// CTEs `seg` (each rate's time segment) and `priced` (the base rows with their pricing key
    /// and rate: a registered pool of the same accelerator prices at its override, else at the
    /// rate in force for its pinned key; any other record at its accelerator's default rate).
    static let seg = """
        seg AS (
            SELECT provider, region, accelerator, tier, effective_from AS s,
                   lead(effective_from) OVER (PARTITION BY provider, region, accelerator, tier ORDER BY effective_from) AS e,
                   usd_per_gpu_hour AS rate
            FROM rates WHERE retired_at IS NULL
        )
        """

    /// CTEs `seg`, `tcap`, `tokhour` and `priced`. `priced` adds to each base row its pricing key,
    /// its rate and `charge_gs`, the GPU-seconds it pays for: its own, or in a pool that
    /// allocates by tokens its weight's share of the hour's paid GPU-seconds (capacity counted
    /// up to `now`), from `tokhour`: per such pool-hour, the weights of all the hour's records
    /// (whatever the report's filters) and the paid GPU-seconds.
    static func pricing(_ q: inout SQLText, from: Timestamp, to: Timestamp, now: Timestamp) -> String {
        let n = q.bind(now)
        let h0 = q.bind(from.hourStart), h1 = q.bind(to)
        return seg + """
        ,
        \(tcap),
        -- The tokens pools' hours of the range, each with its weight and paid GPU-seconds and so
        -- the GPU-seconds one unit of weight pays for.
        \(poolHourWeights("tokw", from: h0, to: h1)),
        tokhour AS MATERIALIZED (
            SELECT k.pool, k.hour, k.wsum, \(paidGPUSeconds("k", now: n))::numeric(1000, 30) / nullif(k.wsum, 0) AS per_weight
            FROM tokw k
        ),
        priced AS (
            SELECT b.*, p.name IS NOT NULL AS in_pool, coalesce(p.allocation = 'tokens', false) AS by_tokens,
                   CASE WHEN p.allocation = 'tokens'
                        THEN coalesce(b.tok_gs, th.per_weight * \(weight("b", "p")), 0)
                        ELSE b.gpu_seconds END AS charge_gs,
                   coalesce(p.provider, d.provider) AS kp, coalesce(p.region, d.region) AS kr, coalesce(p.tier, d.tier) AS kt,
                   coalesce(p.usd_per_gpu_hour, s.rate) AS rate,
                   CASE WHEN p.usd_per_gpu_hour IS NULL THEN s.s END AS seg_s,
                   CASE WHEN p.usd_per_gpu_hour IS NULL THEN s.e END AS seg_e
            FROM base b
            LEFT JOIN pools p ON p.name = b.pool AND p.accelerator = b.accelerator
            LEFT JOIN tokhour th ON p.allocation = 'tokens' AND th.pool = b.pool AND th.hour = b.hour
            LEFT JOIN default_rates d ON p.name IS NULL AND d.accelerator = b.accelerator
            LEFT JOIN seg s ON p.usd_per_gpu_hour IS NULL
                 AND s.provider = coalesce(p.provider, d.provider) AND s.region = coalesce(p.region, d.region)
                 AND s.accelerator = b.accelerator AND s.tier = coalesce(p.tier, d.tier)
                 AND b.hour >= s.s AND (s.e IS NULL OR b.hour < s.e)
        )
        """
    }
}
