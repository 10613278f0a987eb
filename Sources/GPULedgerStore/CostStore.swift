import Foundation
import GPULedgerCore
import Logging
import PostgresNIO
import Tracing

/// What a cost report is asked for.
public struct CostQuery: Sendable {
    public var from: Timestamp
    public var to: Timestamp
    public var groupBy: [GroupKey]
    public var tenant: String?
    public var model: String?
    public var accelerator: String?
    /// A pool name; "" selects the records that name no pool.
    public var pool: String?
    /// Read the raw records only, never the rollup (for the benchmark's comparison).
    public var rawOnly = false
    /// Up to when a pool's capacity is paid for (a `tokens` pool's current hour splits what is
    /// paid so far); by default `to`.
    public var now: Timestamp?

    public init(from: Timestamp, to: Timestamp, groupBy: [GroupKey], tenant: String? = nil, model: String? = nil,
                accelerator: String? = nil, pool: String? = nil) {
        self.from = from
        self.to = to
        self.groupBy = groupBy
        self.tenant = tenant
        self.model = model
        self.accelerator = accelerator
        self.pool = pool
    }
}

/// One row of a cost report; money as exact decimal text (12 places).
public struct CostRow: Sendable, Equatable {
    /// The group's values in `groupBy` order; nil: no value (a record with no pool or label).
    public var group: [String?]
    public var requests: Int64
    public var errors: Int64
    public var gpuSeconds: String
    public var inputTokens: Int64
    public var outputTokens: Int64
    public var costUSD: String
    public var costPerRequestUSD: String?
    public var costPer1MTokensUSD: String?
    public var unpricedGPUSeconds: String
}

public struct CostReport: Sendable, Equatable {
    public var rows: [CostRow]
    public var total: CostRow
}

/// Cost reports over the ledger, priced from the rate history at query time.
///
/// Sums come from the hourly rollup (`usage_hourly`) for the whole hours of the range and from
/// the raw records for the partial hours at its ends, or from the raw records alone when the
/// report groups by a label. Every row of the rollup has one rate (rates change on whole hours),
/// so the cost of any set of records is Σ gpu_seconds × rate / 3600 exactly, rounded once, half
/// up, to 12 places (`usd_round(numerator, denominator)` in SQL).
public struct CostStore: Sendable {
    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) { self.db = database }

    /// `GET /v1/costs`.
    public func costs(_ query: CostQuery) async throws -> CostReport {
        var q = SQLText()
        let labels = query.groupBy.compactMap { if case .label(let k) = $0 { k } else { nil } }
        let now = min(query.now ?? query.to, query.to)
        if !query.rawOnly { try await TokenShareCache.refresh(db, from: query.from, to: query.to, now: now) }
        let base = ReportSQL.base(&q, from: query.from, to: query.to, labels: labels, tenant: query.tenant,
                             model: query.model, accelerator: query.accelerator, pool: query.pool, rawOnly: query.rawOnly,
                             hourly: query.groupBy.contains(.hour), fleet: !query.groupBy.contains(.tenant), tokenCacheUntil: now)
        // Group expressions and how each is shown.
        var groupExprs: [String] = []
        var shown: [String] = []
        var labelIndex = 0
        for key in query.groupBy {
            switch key {
            case .tenant: groupExprs.append("tenant"); shown.append("tenant")
            case .model: groupExprs.append("model"); shown.append("model")
            case .accelerator: groupExprs.append("accelerator"); shown.append("accelerator")
            case .pool: groupExprs.append("pool"); shown.append("nullif(pool, '')")
            case .hour: groupExprs.append("hour"); shown.append(#"to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00:00"Z"')"#)
            case .day:
                groupExprs.append("date_trunc('day', hour, 'UTC')")
                shown.append(#"to_char(date_trunc('day', hour, 'UTC') AT TIME ZONE 'UTC', 'YYYY-MM-DD')"#)
            case .month:
                groupExprs.append("date_trunc('month', hour, 'UTC')")
                shown.append(#"to_char(date_trunc('month', hour, 'UTC') AT TIME ZONE 'UTC', 'YYYY-MM')"#)
            case .label:
                groupExprs.append("l\(labelIndex)"); shown.append("l\(labelIndex)")
                labelIndex += 1
            }
        }
        let grouping = groupExprs.isEmpty ? "GROUP BY ()" : "GROUP BY GROUPING SETS ((\(groupExprs.joined(separator: ", "))), ())"
        let isTotal = groupExprs.isEmpty ? "true" : "GROUPING(\(groupExprs.joined(separator: ", "))) <> 0"
        let shownList = shown.isEmpty ? "" : shown.map { "(\($0))::text" }.joined(separator: ", ") + ", "
        // Text sorts byte-wise whatever the database's collation; a missing pool or label last.
        let order = groupExprs.isEmpty ? "" : "ORDER BY " + zip(query.groupBy, groupExprs).map { key, expr in
            switch key {
            case .day, .hour, .month: "\(expr) NULLS LAST"
            case .pool: "nullif(pool, '') COLLATE \"C\" NULLS LAST"
            default: "\(expr) COLLATE \"C\" NULLS LAST"
            }
        }.joined(separator: ", ")
        let pricing = ReportSQL.pricing(&q, from: query.from, to: query.to, now: query.now ?? query.to)
        q.sql = """
            WITH \(ReportSQL.split),
            base AS (
            \(base)
            ),
            \(pricing)
            SELECT \(isTotal), \(shownList)
                   coalesce(sum(requests), 0)::bigint, coalesce(sum(errors), 0)::bigint, coalesce(trim_scale(sum(gpu_seconds)), 0)::text,
                   coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint,
                   usd_round(coalesce(sum(charge_gs * rate), 0), 3600)::text,
                   usd_round(sum(charge_gs * rate), 3600 * sum(requests) FILTER (WHERE rate IS NOT NULL))::text,
                   usd_round(sum(charge_gs * rate) * 1000000, 3600 * sum(input_tokens + output_tokens) FILTER (WHERE rate IS NOT NULL))::text,
                   coalesce(trim_scale(sum(gpu_seconds) FILTER (WHERE rate IS NULL)), 0)::text
            FROM priced
            \(grouping)
            \(order)
            """
        let columns = shown.count
        let logger = self.logger
        let sqlQuery = q.query
        return try await db.withConnection { conn in
            try await ReportSQL.noJIT(conn, logger)
            let result = try await conn.query(sqlQuery, logger: logger)
            var rows: [CostRow] = []
            var total: CostRow?
            for try await row in result {
                var cells = row.makeIterator()
                let totalRow = try cells.next()!.decode(Bool.self)
                var group: [String?] = []
                for _ in 0..<columns { group.append(try cells.next()!.decode(String?.self)) }
                let r = CostRow(
                    group: group,
                    requests: try cells.next()!.decode(Int64.self), errors: try cells.next()!.decode(Int64.self),
                    gpuSeconds: try cells.next()!.decode(String.self),
                    inputTokens: try cells.next()!.decode(Int64.self), outputTokens: try cells.next()!.decode(Int64.self),
                    costUSD: try cells.next()!.decode(String.self),
                    costPerRequestUSD: try cells.next()!.decode(String?.self),
                    costPer1MTokensUSD: try cells.next()!.decode(String?.self),
                    unpricedGPUSeconds: try cells.next()!.decode(String.self))
                if totalRow { total = r } else { rows.append(r) }
            }
            let t = total ?? CostRow(group: Array(repeating: nil, count: columns), requests: 0, errors: 0, gpuSeconds: "0",
                                     inputTokens: 0, outputTokens: 0, costUSD: "0.000000000000", costPerRequestUSD: nil,
                                     costPer1MTokensUSD: nil, unpricedGPUSeconds: "0")
            // With no group_by the one row is the total.
            if columns == 0 { rows = [t] }
            return CostReport(rows: rows, total: t)
        }
    }
}

extension CostStore {
    /// Exact to 24 places before a division, so that ratios keep 20 places after it.
    static let exact = "::numeric(1000, 24)"

    /// What of a bill's items the store returns: each tenant's rounding needs every tenant's
    /// exact sums (largest remainder, `Chargeback.assemble`), but its lines only its own items.
    public enum BillDetail: Sendable, Equatable {
        /// Every item (the fleet's bill, an invoice).
        case everyTenant
        /// The tenant's items and the fleet's (no tenant); every other tenant's summed into one
        /// item per kind, priced or not: the same cents for every tenant, the tenant's lines only.
        case oneTenant(String)
        /// The fleet's items, every tenant's summed (each tenant's cents, no tenant's lines).
        case tenantTotals
    }

    /// The month's bill as of `now`; only one tenant's rows and lines when `tenant` is set (the
    /// fleet's totals stay the whole fleet's), from its own items and the other tenants' sums.
    public func bill(period: Period, tenant: String?, now: Timestamp) async throws -> Chargeback {
        var bill = try await bill(period: period, detail: tenant.map(BillDetail.oneTenant) ?? .everyTenant, now: now)
        if let tenant {
            bill.tenants = bill.tenants.filter { $0.tenant == tenant }
            bill.lines = bill.lines.filter { $0.item.tenant == tenant }
        }
        return bill
    }

    /// Each tenant's cents for the month as of `now` (usage and idle, as `Chargeback.figures`
    /// has them; nil: the unallocated idle), without the lines.
    public func figures(period: Period, now: Timestamp) async throws -> [String?: Decimal] {
        try await bill(period: period, detail: .tenantTotals, now: now).figures
    }

    func bill(period: Period, detail: BillDetail, now: Timestamp) async throws -> Chargeback {
        let items = try await withSpan("report chargeback", ofKind: .internal) { span in
            span.attributes["gpuledger.period"] = period.description
            return try await chargebackItems(period: period, now: now, detail: detail)
        }
        return Chargeback.assemble(period: period, items: items)
    }

    /// The priced pieces of a month's bill (see `ChargeItem`). Usage comes from the summaries.
    /// Idle is provisioned − used GPU-seconds per pool and hour, shared among the hour's tenants
    /// in proportion to their usage cost there (one rate per pool-hour, so in proportion to
    /// their GPU-seconds); capacity counts up to `now` in the current month. Idle, provisioned
    /// and over-capacity figures are kept per pool-day in `idle_cache` and recomputed here for
    /// every pool-day whose usage or pricing changed since (`rawOnly`: from the raw records,
    /// without summaries or cache, for the benchmark's comparison). `usageUntil` leaves out the
    /// usage at or after it (a budget asked about a past moment); idle is shared by whole hours.
    public func chargebackItems(period: Period, now: Timestamp, usageUntil: Timestamp? = nil,
                                rawOnly: Bool = false, detail: BillDetail = .everyTenant) async throws -> [ChargeItem] {
        let end = min(period.end, max(now, period.start))
        let logger = self.logger
        // (Through a hot standby nothing can be written: stale pool-days are computed below, and
        // the primary's background runner keeps the cache current.)
        if !rawOnly && !db.readsFromReplica {
            // Bring the cache up to date for the period's finished pool-days (one writer at a time).
            var refresh = SQLText()
            refresh.sql = Self.poolDays(&refresh, period: period, end: end) + """
                , todo AS (SELECT pool, day, version FROM cur WHERE cacheable AND NOT valid),
                \(ReportSQL.seg),
                \(Self.idleItems(&refresh, end: end, usage: "usage_hourly_live", period: period)),
                gone AS (DELETE FROM idle_cache c USING todo t WHERE c.pool = t.pool AND c.day = t.day)
                INSERT INTO idle_cache (pool, day, usage_version, epoch, kind, tenant, accelerator, provider, region, tier, rate, seg_s, seg_e,
                                        pool_hours, gpu_seconds, cost)
                SELECT i.pool, i.day, t.version, (SELECT epoch FROM report_epoch), i.kind, i.tenant, i.accelerator, i.provider, i.region, i.tier,
                       i.rate, i.seg_s, i.seg_e, i.pool_hours, i.gs, i.cost
                FROM items i JOIN todo t ON t.pool = i.pool AND t.day = i.day
                UNION ALL
                SELECT pool, day, version, (SELECT epoch FROM report_epoch), 'computed', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
                FROM todo
                """
            let refreshQuery = refresh.query
            try await db.withTransaction { tx in
                try await ReportSQL.noJIT(tx, logger)
                var stale = false
                var check = SQLText()
                check.sql = Self.poolDays(&check, period: period, end: end) + " SELECT count(*) FROM cur WHERE cacheable AND NOT valid"
                for try await n in try await tx.query(check.query, logger: logger).decode(Int64.self) { stale = n > 0 }
                guard stale else { return }
                try await tx.query("SELECT pg_advisory_xact_lock(7262019)", logger: logger)
                // The cache is derived data, checked against versions on every read: losing its
                // last write in a crash only means recomputing it, so it need not wait for the
                // WAL flush (which cost more than the recomputation itself under ingest).
                try await tx.query("SET LOCAL synchronous_commit = off", logger: logger)
                try await tx.query(refreshQuery, logger: logger)
            }
        }
        var q = SQLText()
        let usageEnd = usageUntil.map { min(max($0, period.start), period.end) } ?? period.end
        if !rawOnly { try await TokenShareCache.refresh(db, from: period.start, to: usageEnd, now: end) }
        let usageBase = ReportSQL.base(&q, from: period.start, to: usageEnd, rawOnly: rawOnly, tokenCacheUntil: rawOnly ? nil : end)
        let idle: String
        if rawOnly {
            let rawHourly = ReportSQL.base(&q, from: period.start, to: period.end, rawOnly: true)
            idle = """
                cur AS (SELECT p.name AS pool, d.day FROM (SELECT name FROM pools WHERE allocation = 'gpu_seconds') p,
                        \(q.days(from: period.start, to: period.end)) AS d),
                todo AS (SELECT pool, day FROM cur),
                rawhourly AS (\(rawHourly)),
                \(Self.idleItems(&q, end: end, usage: "rawhourly", period: period)),
                idle AS (SELECT kind, tenant, pool, accelerator, provider, region, tier, rate, seg_s, seg_e, pool_hours, gs, cost FROM items)
                """
        } else {
            idle = Self.poolDays(&q, period: period, end: end).dropFirst(5) + """
                , todo AS (SELECT pool, day FROM cur WHERE NOT (cacheable AND valid)),
                \(Self.idleItems(&q, end: end, usage: "usage_hourly_live", period: period)),
                idle AS (
                    SELECT kind, tenant, pool, accelerator, provider, region, tier, rate, seg_s, seg_e, pool_hours, gs, cost FROM items
                    UNION ALL
                    SELECT c.kind, c.tenant, c.pool, c.accelerator, c.provider, c.region, c.tier, c.rate, c.seg_s, c.seg_e, c.pool_hours, c.gpu_seconds, c.cost
                    FROM idle_cache c JOIN cur ON cur.pool = c.pool AND cur.day = c.day AND cur.cacheable AND cur.valid
                    WHERE c.kind <> 'computed'
                )
                """
        }
        let x = Self.exact
        let pricing = ReportSQL.pricing(&q, from: period.start, to: usageEnd, now: end)
        let tokens = Self.tokenItems(&q, period: period, end: end)
        q.sql = """
            WITH \(ReportSQL.split),
            base AS (
            \(usageBase)
            ),
            \(pricing),
            \(idle),
            \(tokens),
            bill_items AS (
                SELECT 'usage' AS kind, tenant, CASE WHEN in_pool THEN pool END AS pool, accelerator, kp AS provider, kr AS region, kt AS tier,
                       rate, seg_s, seg_e, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors, trim_scale(sum(gpu_seconds)) AS gs,
                       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
                       round(sum(charge_gs * rate)\(x) / 3600, 20) AS cost, by_tokens, round(sum(charge_gs), 20) AS charged
                FROM priced GROUP BY tenant, CASE WHEN in_pool THEN pool END, accelerator, kp, kr, kt, rate, seg_s, seg_e, by_tokens
                UNION ALL
                SELECT kind, tenant, pool, accelerator, provider, region, tier, rate, seg_s, seg_e,
                       sum(pool_hours)::bigint, 0, round(sum(gs), 20), 0, 0, round(sum(cost), 20), false, NULL
                FROM (SELECT * FROM idle UNION ALL SELECT * FROM tokitems) i
                GROUP BY kind, tenant, pool, accelerator, provider, region, tier, rate, seg_s, seg_e
            )
            SELECT kind, tenant, pool, accelerator, provider, region, tier, rate::text,
                   (extract(epoch FROM seg_s) * 1000000)::bigint, (extract(epoch FROM seg_e) * 1000000)::bigint,
                   requests, errors, gs::text, input_tokens, output_tokens, cost::text, by_tokens, charged::text
            FROM bill_items
            """
        switch detail {
        case .everyTenant:
            break
        case .oneTenant(let tenant):
            let own = " WHERE tenant IS NULL OR tenant = \(q.bind(tenant))\n", others = Self.tenantSums(&q, except: tenant)
            q.sql += own + others
        case .tenantTotals:
            let others = Self.tenantSums(&q, except: nil)
            q.sql += " WHERE tenant IS NULL\n" + others
        }
        let sqlQuery = q.query
        return try await db.withConnection { conn in
            try await ReportSQL.noJIT(conn, logger)
            var items: [ChargeItem] = []
            let rows = try await conn.query(sqlQuery, logger: logger)
            for try await row in rows {
                var c = row.makeIterator()
                func s() throws -> String? { try c.next()!.decode(String?.self) }
                func i() throws -> Int64 { try c.next()!.decode(Int64.self) }
                guard let kind = ChargeItem.Kind(rawValue: try s() ?? "") else { continue }
                let tenant = try s(), pool = try s(), accelerator = try s() ?? "", provider = try s(), region = try s(), tier = try s()
                let rate = try s().flatMap(CentRounding.decimal)
                let segS = try c.next()!.decode(Int64?.self).map(Timestamp.init(microseconds:))
                let segE = try c.next()!.decode(Int64?.self).map(Timestamp.init(microseconds:))
                let requests = try i(), errors = try i()
                let gs = try s().flatMap(CentRounding.decimal) ?? 0
                let input = try i(), output = try i()
                let cost = try s().flatMap(CentRounding.decimal)
                let byTokens = try c.next()!.decode(Bool.self)
                let charged = try s().flatMap(CentRounding.decimal)
                var item = ChargeItem(kind: kind, tenant: tenant, pool: pool, accelerator: accelerator, provider: provider, region: region,
                                      tier: tier, usdPerGPUHour: rate, segmentStart: segS, segmentEnd: segE, requests: requests,
                                      errors: errors, gpuSeconds: gs, inputTokens: input, outputTokens: output, costUSD: cost)
                if byTokens { item.tokenShareGPUSeconds = charged ?? 0 }
                items.append(item)
            }
            return items
        }
    }

    /// `UNION ALL` the tenants' items summed (but `except`'s), one item per tenant, kind and
    /// priced or not, with the columns of `chargebackItems`' rows: what `Chargeback.assemble`
    /// needs of them for every tenant's cents (it adds up exact item costs; these are the same sums).
    static func tenantSums(_ q: inout SQLText, except tenant: String?) -> String {
        """
        UNION ALL
        SELECT kind, tenant, NULL, '', NULL, NULL, NULL, NULL, NULL::bigint, NULL::bigint, sum(requests)::bigint, sum(errors)::bigint,
               sum(gs)::text, sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cost)::text, false, NULL
        FROM bill_items WHERE tenant IS NOT NULL\(tenant.map { " AND tenant <> \(q.bind($0))" } ?? "")
        GROUP BY kind, tenant, cost IS NULL
        """
    }

    /// `WITH cur AS (…)`: every registered pool and day of the period, with its usage version,
    /// whether it is finished (`cacheable`: the day ended by `end`) and whether the cache holds
    /// it for that version and the current pricing epoch (`valid`).
    static func poolDays(_ q: inout SQLText, period: Period, end: Timestamp) -> String {
        """
        WITH cur AS (
            SELECT p.name AS pool, d.day, coalesce(v.version, 0) AS version, d.day + interval '1 day' <= \(q.bind(end)) AS cacheable,
                   EXISTS (SELECT 1 FROM idle_cache m WHERE m.pool = p.name AND m.day = d.day AND m.kind = 'computed'
                           AND m.usage_version = coalesce(v.version, 0) AND m.epoch = (SELECT epoch FROM report_epoch)) AS valid
            FROM pools p
            CROSS JOIN \(q.days(from: period.start, to: period.end)) AS d
            LEFT JOIN pool_day_versions v ON v.pool = p.name AND v.day = d.day
            WHERE p.allocation = 'gpu_seconds'
        )
        """
    }

    /// CTEs ending in `tokitems`: for the pools that allocate by tokens, each pool's provisioned
    /// capacity in the period up to `end` and the unallocated part of it (the hours with capacity
    /// and no weight), priced per rate segment, with the columns of `idle`. (Their usage is
    /// priced in `priced`: the hour's paid cost split by weight; there is no idle share.)
    static func tokenItems(_ q: inout SQLText, period: Period, end: Timestamp) -> String {
        let e = q.bind(end), ps = q.bind(period.start), pe = q.bind(period.end)
        return """
            tph AS MATERIALIZED (
                SELECT c.pool, h.hour,
                       sum(c.gpus * extract(epoch FROM least(c.e, h.hour + interval '1 hour', \(e)) - greatest(c.s, h.hour))) AS gs
                FROM tcap c
                JOIN pools p ON p.name = c.pool AND p.allocation = 'tokens'
                CROSS JOIN LATERAL generate_series(greatest(date_trunc('hour', c.s, 'UTC'), \(ps)),
                                                   least(c.e, \(pe), \(e)) - interval '1 microsecond', interval '1 hour') AS h(hour)
                WHERE c.gpus > 0 AND c.s < least(\(pe), \(e)) AND c.e > \(ps)
                GROUP BY 1, 2
            ),
            \(ReportSQL.poolHourWeights("tpw", from: ps, to: pe)),
            tphw AS MATERIALIZED (
                SELECT t.pool, t.hour, t.gs, coalesce(w.wsum, 0) > 0 AS used,
                       p.accelerator, p.provider, p.region, p.tier, coalesce(p.usd_per_gpu_hour, s.rate) AS rate,
                       CASE WHEN p.usd_per_gpu_hour IS NULL THEN s.s END AS seg_s,
                       CASE WHEN p.usd_per_gpu_hour IS NULL THEN s.e END AS seg_e
                FROM tph t
                JOIN pools p ON p.name = t.pool
                LEFT JOIN tpw w ON w.pool = t.pool AND w.hour = t.hour
                LEFT JOIN seg s ON p.usd_per_gpu_hour IS NULL AND s.provider = p.provider AND s.region = p.region
                     AND s.accelerator = p.accelerator AND s.tier = p.tier AND t.hour >= s.s AND (s.e IS NULL OR t.hour < s.e)
            ),
            tokitems AS (
                SELECT k AS kind, NULL::text AS tenant, pool, accelerator, provider, region, tier, rate, seg_s, seg_e,
                       count(*)::bigint AS pool_hours, sum(gs) AS gs, sum(gs * rate)\(exact) / 3600 AS cost
                FROM (SELECT 'provisioned' AS k, * FROM tphw UNION ALL SELECT 'unallocated', * FROM tphw WHERE NOT used) f
                GROUP BY k, pool, accelerator, provider, region, tier, rate, seg_s, seg_e
            )
            """
    }

    /// CTEs ending in `items`: per pool-day of `todo` (pool, day), the idle share of each tenant,
    /// the unallocated idle, the provisioned capacity and the usage over it, priced, from the
    /// hourly usage in `usage` (a table or CTE with the columns of usage_hourly).
    static func idleItems(_ q: inout SQLText, end: Timestamp, usage: String, period: Period) -> String {
        let e = q.bind(end)
        let x = exact
        return """
            pu AS (
                SELECT h.pool, h.hour, h.tenant, sum(h.gpu_seconds) AS gs
                FROM todo t
                -- On the hourly summary, OFFSET 0 keeps the subquery per pool-day (an index range each);
                -- pulled up into a join it became a scan of the whole summary even with nothing to
                -- do. (The raw comparison's CTE has no index: there the join is the better plan.)
                CROSS JOIN LATERAL (SELECT * FROM \(usage) WHERE pool = t.pool AND hour >= t.day AND hour < least(t.day + interval '1 day', \(e))\(usage == "usage_hourly_live" ? " OFFSET 0" : "")) h
                JOIN pools p ON p.name = h.pool AND p.accelerator = h.accelerator
                GROUP BY 1, 2, 3
            ),
            pused AS (SELECT pool, hour, sum(gs) AS gs FROM pu GROUP BY 1, 2),
            cap AS (SELECT pool, at AS s, coalesce(lead(at) OVER (PARTITION BY pool ORDER BY at), 'infinity') AS e, gpus FROM pool_capacity),
            prov AS (
                SELECT c.pool, h.hour, sum(c.gpus * extract(epoch FROM least(c.e, h.hour + interval '1 hour', \(e)) - greatest(c.s, h.hour))) AS gs
                FROM todo t
                JOIN cap c ON c.pool = t.pool AND c.gpus > 0 AND c.s < least(t.day + interval '1 day', \(e)) AND c.e > t.day
                CROSS JOIN LATERAL generate_series(greatest(date_trunc('hour', c.s, 'UTC'), t.day),
                                                   least(c.e, t.day + interval '1 day', \(e)) - interval '1 microsecond', interval '1 hour') AS h(hour)
                GROUP BY 1, 2
            ),
            phr AS (
                SELECT coalesce(v.pool, u.pool) AS pool, coalesce(v.hour, u.hour) AS hour,
                       date_trunc('day', coalesce(v.hour, u.hour), 'UTC') AS day,
                       coalesce(v.gs, 0) AS prov_gs, coalesce(u.gs, 0) AS used_gs,
                       greatest(coalesce(v.gs, 0) - coalesce(u.gs, 0), 0) AS idle_gs,
                       greatest(coalesce(u.gs, 0) - coalesce(v.gs, 0), 0) AS over_gs,
                       p.accelerator, p.provider, p.region, p.tier, coalesce(p.usd_per_gpu_hour, s.rate) AS rate,
                       CASE WHEN p.usd_per_gpu_hour IS NULL THEN s.s END AS seg_s,
                       CASE WHEN p.usd_per_gpu_hour IS NULL THEN s.e END AS seg_e
                FROM prov v FULL JOIN pused u ON u.pool = v.pool AND u.hour = v.hour
                JOIN pools p ON p.name = coalesce(v.pool, u.pool)
                LEFT JOIN seg s ON p.usd_per_gpu_hour IS NULL AND s.provider = p.provider AND s.region = p.region
                     AND s.accelerator = p.accelerator AND s.tier = p.tier
                     AND coalesce(v.hour, u.hour) >= s.s AND (s.e IS NULL OR coalesce(v.hour, u.hour) < s.e)
            ),
            items AS (
                SELECT phr.pool, phr.day, 'idle' AS kind, pu.tenant, accelerator, provider, region, tier, rate, seg_s, seg_e,
                       0::bigint AS pool_hours, sum((idle_gs * pu.gs)\(x) / used_gs) AS gs,
                       sum((idle_gs * pu.gs * rate)\(x) / (used_gs * 3600)) AS cost
                FROM phr JOIN pu ON pu.pool = phr.pool AND pu.hour = phr.hour
                WHERE used_gs > 0 AND idle_gs > 0
                GROUP BY phr.pool, phr.day, pu.tenant, accelerator, provider, region, tier, rate, seg_s, seg_e
                UNION ALL
                SELECT pool, day, k, NULL, accelerator, provider, region, tier, rate, seg_s, seg_e,
                       count(*), sum(gs), sum(gs * rate)\(x) / 3600
                FROM (SELECT 'unallocated' AS k, idle_gs AS gs, * FROM phr WHERE used_gs = 0 AND idle_gs > 0
                      UNION ALL SELECT 'provisioned', prov_gs, * FROM phr WHERE prov_gs > 0
                      UNION ALL SELECT 'over', over_gs, * FROM phr WHERE over_gs > 0) f
                GROUP BY pool, day, k, accelerator, provider, region, tier, rate, seg_s, seg_e
            )
            """
    }
}

extension CostStore {
    /// The label keys on a tenant's records in `[from, to)`, sorted: those in the label summary
    /// of its hours there, and those of the first `sample` records with labels in the last hour
    /// of it (not summarized yet); a key on none of them is still reachable by
    /// `group_by=label:KEY`. Callers keep the window short. The records are read by time alone
    /// (`OFFSET 0` keeps the tenant out of the scan: with it, PostgreSQL ANDed the time range
    /// with the tenant's whole key range, 300 ms for the largest tenant at 10 million records).
    public func labelKeys(tenant: String, from: Timestamp, to: Timestamp, sample: Int = 2000) async throws -> [String] {
        let logger = db.logger
        let f = from.rfc3339, t = to.rfc3339
        return try await db.withConnection { conn in
            var keys: [String] = []
            for try await key in try await conn.query("""
                SELECT DISTINCT k COLLATE "C" FROM (
                    SELECT key AS k FROM usage_label_hourly
                    WHERE hour >= \(f)::timestamptz AND hour < \(t)::timestamptz AND tenant = \(tenant)
                    UNION ALL
                    SELECT jsonb_object_keys(s.labels) FROM (
                        SELECT labels FROM (SELECT tenant, labels FROM usage_records
                                            WHERE started_at >= greatest(\(f)::timestamptz, \(t)::timestamptz - interval '1 hour')
                                              AND started_at < \(t)::timestamptz AND labels IS NOT NULL OFFSET 0) w
                        WHERE tenant = \(tenant) LIMIT \(sample)) s) keys
                ORDER BY 1 LIMIT 50
                """, logger: logger).decode(String.self) {
                keys.append(key)
            }
            return keys
        }
    }
}
