import Foundation
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

    var query: PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}

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

    static let hour: Int64 = 3_600_000_000

    /// The rows in `[from, to)`: from the rollup for whole hours, the raw records otherwise.
    /// Columns: hour, tenant, model, accelerator, pool ('' for none), requests, errors,
    /// gpu_seconds, input_tokens, output_tokens, then one `l<i>` per label key.
    static func base(_ q: inout SQLText, from: Timestamp, to: Timestamp, labels: [String],
                     tenant: String?, model: String?, accelerator: String?, pool: String?) -> String {
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
                       sum(gpu_seconds) AS gpu_seconds, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens\(labelGroup)
                FROM (SELECT date_trunc('hour', started_at, 'UTC') AS hour, tenant, model, accelerator, coalesce(pool, '') AS pool,
                             status, gpu_seconds, input_tokens, output_tokens\(labelColumns)
                      FROM usage_records WHERE (\(cond))\(filters)) r
                GROUP BY hour, tenant, model, accelerator, pool\(labelGroup)
                """
        }
        guard from < to else { return raw([(from, from)]) }
        let firstWhole = Timestamp(microseconds: (from.microseconds + hour - 1).floorDiv(hour) * hour)
        let lastWhole = Timestamp(microseconds: to.microseconds.floorDiv(hour) * hour)
        if !labels.isEmpty || firstWhole >= lastWhole { return raw([(from, to)]) }
        var parts = ["""
            SELECT hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens
            FROM usage_hourly WHERE hour >= \(q.bind(firstWhole)) AND hour < \(q.bind(lastWhole))\(filters)
            """]
        var edges: [(Timestamp, Timestamp)] = []
        if from < firstWhole { edges.append((from, firstWhole)) }
        if lastWhole < to { edges.append((lastWhole, to)) }
        if !edges.isEmpty { parts.append(raw(edges)) }
        return parts.joined(separator: "\nUNION ALL\n")
    }

    /// CTEs `seg` (each rate's time segment) and `priced` (the base rows with their pricing key
    /// and rate: a registered pool of the same accelerator prices at its override, else at the
    /// rate in force for its pinned key; any other record at its accelerator's default rate).
    static let pricing = """
        seg AS (
            SELECT provider, region, accelerator, tier, effective_from AS s,
                   lead(effective_from) OVER (PARTITION BY provider, region, accelerator, tier ORDER BY effective_from) AS e,
                   usd_per_gpu_hour AS rate
            FROM rates WHERE retired_at IS NULL
        ),
        priced AS (
            SELECT b.*, p.name IS NOT NULL AS in_pool,
                   coalesce(p.provider, d.provider) AS kp, coalesce(p.region, d.region) AS kr, coalesce(p.tier, d.tier) AS kt,
                   coalesce(p.usd_per_gpu_hour, s.rate) AS rate,
                   CASE WHEN p.usd_per_gpu_hour IS NULL THEN s.s END AS seg_s,
                   CASE WHEN p.usd_per_gpu_hour IS NULL THEN s.e END AS seg_e
            FROM base b
            LEFT JOIN pools p ON p.name = b.pool AND p.accelerator = b.accelerator
            LEFT JOIN default_rates d ON p.name IS NULL AND d.accelerator = b.accelerator
            LEFT JOIN seg s ON p.usd_per_gpu_hour IS NULL
                 AND s.provider = coalesce(p.provider, d.provider) AND s.region = coalesce(p.region, d.region)
                 AND s.accelerator = b.accelerator AND s.tier = coalesce(p.tier, d.tier)
                 AND b.hour >= s.s AND (s.e IS NULL OR b.hour < s.e)
        )
        """

    /// `GET /v1/costs`.
    public func costs(_ query: CostQuery) async throws -> CostReport {
        var q = SQLText()
        let labels = query.groupBy.compactMap { if case .label(let k) = $0 { k } else { nil } }
        let base = Self.base(&q, from: query.from, to: query.to, labels: labels, tenant: query.tenant,
                             model: query.model, accelerator: query.accelerator, pool: query.pool)
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
        q.sql = """
            WITH base AS (
            \(base)
            ),
            \(Self.pricing)
            SELECT \(isTotal), \(shownList)
                   coalesce(sum(requests), 0)::bigint, coalesce(sum(errors), 0)::bigint, coalesce(trim_scale(sum(gpu_seconds)), 0)::text,
                   coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint,
                   usd_round(coalesce(sum(gpu_seconds * rate), 0), 3600)::text,
                   usd_round(sum(gpu_seconds * rate), 3600 * sum(requests) FILTER (WHERE rate IS NOT NULL))::text,
                   usd_round(sum(gpu_seconds * rate) * 1000000, 3600 * sum(input_tokens + output_tokens) FILTER (WHERE rate IS NOT NULL))::text,
                   coalesce(trim_scale(sum(gpu_seconds) FILTER (WHERE rate IS NULL)), 0)::text
            FROM priced
            \(grouping)
            \(order)
            """
        let columns = shown.count
        let logger = self.logger
        let sqlQuery = q.query
        return try await db.withConnection { conn in
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

    /// The priced pieces of a month's bill (see `ChargeItem`). Capacity counts up to `now` for
    /// the current month. Usage comes from the rollup; idle is provisioned − used GPU-seconds
    /// per pool and hour, shared among the hour's tenants in proportion to their usage cost
    /// there (one rate per pool-hour, so in proportion to their GPU-seconds).
    public func chargebackItems(period: Period, now: Timestamp = .now()) async throws -> [ChargeItem] {
        var q = SQLText()
        let ps = q.bind(period.start)
        let pe = q.bind(period.end)
        let end = q.bind(min(period.end, max(now, period.start)))
        let x = Self.exact
        q.sql = """
            WITH base AS (
                SELECT hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens
                FROM usage_hourly WHERE hour >= \(ps) AND hour < \(pe)
            ),
            \(Self.pricing),
            pu AS (SELECT pool, hour, tenant, sum(gpu_seconds) AS gs FROM priced WHERE in_pool GROUP BY 1, 2, 3),
            pused AS (SELECT pool, hour, sum(gs) AS gs FROM pu GROUP BY 1, 2),
            cap AS (SELECT pool, at AS s, coalesce(lead(at) OVER (PARTITION BY pool ORDER BY at), 'infinity') AS e, gpus FROM pool_capacity),
            prov AS (
                SELECT c.pool, h.hour,
                       sum(c.gpus * extract(epoch FROM least(c.e, h.hour + interval '1 hour', \(end)) - greatest(c.s, h.hour))) AS gs
                FROM cap c,
                     generate_series(date_trunc('hour', greatest(c.s, \(ps)), 'UTC'), least(c.e, \(end)) - interval '1 microsecond', interval '1 hour') AS h(hour)
                WHERE c.gpus > 0 AND greatest(c.s, \(ps)) < least(c.e, \(end))
                GROUP BY 1, 2
            ),
            phr AS (
                SELECT coalesce(v.pool, u.pool) AS pool, coalesce(v.hour, u.hour) AS hour,
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
            )
            SELECT 'usage', tenant, CASE WHEN in_pool THEN pool END, accelerator, kp, kr, kt, rate::text, (extract(epoch FROM seg_s) * 1000000)::bigint, (extract(epoch FROM seg_e) * 1000000)::bigint,
                   sum(requests)::bigint, sum(errors)::bigint, trim_scale(sum(gpu_seconds))::text,
                   sum(input_tokens)::bigint, sum(output_tokens)::bigint,
                   round(sum(gpu_seconds * rate)\(x) / 3600, 20)::text
            FROM priced GROUP BY tenant, CASE WHEN in_pool THEN pool END, accelerator, kp, kr, kt, rate, seg_s, seg_e
            UNION ALL
            SELECT 'idle', pu.tenant, phr.pool, accelerator, provider, region, tier, rate::text, (extract(epoch FROM seg_s) * 1000000)::bigint, (extract(epoch FROM seg_e) * 1000000)::bigint,
                   0, 0, round(sum((idle_gs * pu.gs)\(x) / used_gs), 20)::text, 0, 0,
                   round(sum((idle_gs * pu.gs * rate)\(x) / (used_gs * 3600)), 20)::text
            FROM phr JOIN pu ON pu.pool = phr.pool AND pu.hour = phr.hour
            WHERE used_gs > 0 AND idle_gs > 0
            GROUP BY pu.tenant, phr.pool, accelerator, provider, region, tier, rate, seg_s, seg_e
            UNION ALL
            SELECT k, NULL, pool, accelerator, provider, region, tier, rate::text, (extract(epoch FROM seg_s) * 1000000)::bigint, (extract(epoch FROM seg_e) * 1000000)::bigint,
                   count(*), 0, trim_scale(sum(gs))::text, 0, 0, round(sum(gs * rate)\(x) / 3600, 20)::text
            FROM (SELECT 'unallocated' AS k, idle_gs AS gs, * FROM phr WHERE used_gs = 0 AND idle_gs > 0
                  UNION ALL SELECT 'provisioned', prov_gs, * FROM phr WHERE prov_gs > 0
                  UNION ALL SELECT 'over', over_gs, * FROM phr WHERE over_gs > 0) f
            GROUP BY k, pool, accelerator, provider, region, tier, rate, seg_s, seg_e
            """
        let logger = self.logger
        let sqlQuery = q.query
        return try await db.withConnection { conn in
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
                items.append(ChargeItem(kind: kind, tenant: tenant, pool: pool, accelerator: accelerator, provider: provider, region: region,
                                        tier: tier, usdPerGPUHour: rate, segmentStart: segS, segmentEnd: segE, requests: requests,
                                        errors: errors, gpuSeconds: gs, inputTokens: input, outputTokens: output, costUSD: cost))
            }
            return items
        }
    }
}

extension Int64 {
    /// Division rounding toward negative infinity.
    func floorDiv(_ d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}
