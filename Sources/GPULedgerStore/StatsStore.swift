import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

/// One row of `/v1/stats`.
public struct StatsRow: Sendable, Equatable {
    public struct Percentiles: Sendable, Equatable {
        public var p50, p95, p99: Double
    }
    public var group: [String?]
    public var requests: Int64
    public var errors: Int64
    public var ttftMS: Percentiles?
    public var tpotMS: Percentiles?
    public var e2eMS: Percentiles?
    /// Time waiting in the engine's queue before the first step (the `queue_ms` field).
    public var queueMS: Percentiles?
    public var outputTokens: Int64
    public var gpuSeconds: Double
    /// Input tokens and cached input tokens of the records that report `cached_input_tokens`.
    public var cacheReportedInputTokens: Int64 = 0
    public var cachedInputTokens: Int64 = 0
    /// The seconds of the row's window: its time bucket within `[from, to)`, else the range.
    public var windowSeconds: Double
    /// Provisioned GPU-seconds of the row's pool in its window (rows of one pool only).
    public var provisionedGPUSeconds: Double?

    public var errorRate: Double { requests > 0 ? Double(errors) / Double(requests) : 0 }
    public var outputTokensPerSecond: Double { windowSeconds > 0 ? Double(outputTokens) / windowSeconds : 0 }
    public var busyGPUs: Double { windowSeconds > 0 ? gpuSeconds / windowSeconds : 0 }
    public var utilization: Double? { provisionedGPUSeconds.flatMap { $0 > 0 ? gpuSeconds / $0 : nil } }
    /// The prefix-cache hit rate: cached input tokens / input tokens, over the records that say
    /// how many of their input tokens were cached (nil when none do, or they had no input).
    public var cacheHitRate: Double? { cacheReportedInputTokens > 0 ? Double(cachedInputTokens) / Double(cacheReportedInputTokens) : nil }
}

/// The serving statistics of the fleet, from the raw records: percentiles are exact
/// (PostgreSQL's `percentile_disc`, the nearest-rank definition: the smallest value with at
/// least p of the values at or below it).
public struct StatsStore: Sendable {
    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) { self.db = database }

    /// Rows per group, then the total (over the whole range) last.
    public func stats(_ query: CostQuery) async throws -> (rows: [StatsRow], total: StatsRow) {
        var q = SQLText()
        let from = q.bind(query.from), to = q.bind(query.to)
        var filters = ""
        if let tenant = query.tenant { filters += " AND tenant = \(q.bind(tenant))" }
        if let model = query.model { filters += " AND model = \(q.bind(model))" }
        if let accelerator = query.accelerator { filters += " AND accelerator = \(q.bind(accelerator))" }
        if let pool = query.pool { filters += " AND coalesce(pool, '') = \(q.bind(pool))" }
        var keys: [String] = []
        for key in query.groupBy {
            switch key {
            case .tenant, .model, .accelerator: keys.append(key.description)
            case .pool: keys.append("pool")
            case .hour: keys.append("date_trunc('hour', started_at, 'UTC')")
            case .day: keys.append("date_trunc('day', started_at, 'UTC')")
            case .month: keys.append("date_trunc('month', started_at, 'UTC')")
            case .label(let k): keys.append("labels ->> \(q.bind(k))")
            }
        }
        // The finest time key sets a row's window.
        let unit = query.groupBy.contains(.hour) ? "hour" : query.groupBy.contains(.day) ? "day" : query.groupBy.contains(.month) ? "month" : nil
        let bucket = unit.map { "date_trunc('\($0)', started_at, 'UTC')" }
        let ws = bucket.map { "greatest(\($0), \(from))" } ?? from
        let we = bucket.map { "least(\($0) + interval '1 \(unit!)', \(to))" } ?? to
        let named = keys.enumerated().map { "\($0.element) AS k\($0.offset)" }
        let keyList = keys.indices.map { "k\($0)" }
        let grouping = keys.isEmpty ? "GROUP BY ()" : "GROUP BY GROUPING SETS ((\(keyList.joined(separator: ", ")), ws, we), ())"
        let isTotal = keys.isEmpty ? "true" : "GROUPING(\(keyList.joined(separator: ", "))) <> 0"
        // Utilization: rows of one pool (grouped by pool and time only, or filtered to a pool).
        let onlyPoolAndTime = query.groupBy.allSatisfy { [.pool, .hour, .day, .month].contains($0) }
        let poolExpr: String? = onlyPoolAndTime && query.groupBy.contains(.pool)
            ? "k\(query.groupBy.firstIndex(of: .pool)!)" : (query.pool.map { _ in "\(q.bind(query.pool!))::text" })
        let shown = query.groupBy.enumerated().map { i, key -> String in
            switch key {
            case .hour: return #"to_char(k\#(i) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00:00"Z"')"#
            case .day: return "to_char(k\(i) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            case .month: return "to_char(k\(i) AT TIME ZONE 'UTC', 'YYYY-MM')"
            default: return "k\(i)::text"
            }
        }
        let order = query.groupBy.enumerated().map { i, key -> String in
            switch key {
            case .hour, .day, .month: "k\(i) NULLS LAST"
            default: "k\(i) COLLATE \"C\" NULLS LAST"
            }
        }
        q.sql = """
            WITH r AS (
                SELECT \((named + ["\(ws) AS ws", "\(we) AS we"]).joined(separator: ", ")), status, ttft_ms, tpot_ms, e2e_ms, queue_ms, output_tokens, gpu_seconds,
                       input_tokens, cached_input_tokens
                FROM usage_records WHERE started_at >= \(from) AND started_at < \(to)\(filters)
            ),
            g AS (
                SELECT \(isTotal) AS total, \((keyList + ["min(ws) AS ws", "max(we) AS we"]).joined(separator: ", ")),
                       count(*)::bigint AS requests, count(*) FILTER (WHERE status = 'error')::bigint AS errors,
                       percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ttft_ms) AS ttft,
                       percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY tpot_ms) AS tpot,
                       percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY e2e_ms) AS e2e,
                       percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY queue_ms) AS queue,
                       coalesce(sum(output_tokens), 0)::bigint AS output_tokens, coalesce(sum(gpu_seconds), 0)::float8 AS gpu_seconds,
                       coalesce(sum(input_tokens) FILTER (WHERE cached_input_tokens IS NOT NULL), 0)::bigint AS cache_input,
                       coalesce(sum(cached_input_tokens), 0)::bigint AS cached_input
                FROM r \(grouping)
            ),
            cap AS (SELECT pool, at AS s, coalesce(lead(at) OVER (PARTITION BY pool ORDER BY at), 'infinity') AS e, gpus FROM pool_capacity)
            SELECT total, \(shown.isEmpty ? "" : shown.joined(separator: ", ") + ",") requests, errors, ttft, tpot, e2e, queue, output_tokens, gpu_seconds,
                   cache_input, cached_input, extract(epoch FROM coalesce(we, \(to)) - coalesce(ws, \(from)))::float8,
                   \(poolExpr.map { p in """
                       CASE WHEN total AND \(keys.isEmpty ? "false" : "true") THEN NULL ELSE (SELECT sum(c.gpus * extract(epoch FROM least(c.e, g.we) - greatest(c.s, g.ws)))::float8
                                                         FROM cap c WHERE c.pool = \(p) AND c.s < g.we AND c.e > g.ws) END
                       """ } ?? "NULL::float8")
            FROM g
            ORDER BY total\(order.isEmpty ? "" : ", " + order.joined(separator: ", "))
            """
        let columns = query.groupBy.count
        let logger = self.logger
        let sqlQuery = q.query
        return try await db.withConnection { conn in
            try await ReportSQL.noJIT(conn, logger)
            var rows: [StatsRow] = []
            var total: StatsRow?
            for try await row in try await conn.query(sqlQuery, logger: logger) {
                var c = row.makeIterator()
                let isTotal = try c.next()!.decode(Bool.self)
                var group: [String?] = []
                for _ in 0..<columns { group.append(try c.next()!.decode(String?.self)) }
                func percentiles() throws -> StatsRow.Percentiles? {
                    guard let a = try c.next()!.decode([Double]?.self), a.count == 3 else { return nil }
                    return .init(p50: a[0], p95: a[1], p99: a[2])
                }
                let r = StatsRow(group: group, requests: try c.next()!.decode(Int64.self), errors: try c.next()!.decode(Int64.self),
                                 ttftMS: try percentiles(), tpotMS: try percentiles(), e2eMS: try percentiles(), queueMS: try percentiles(),
                                 outputTokens: try c.next()!.decode(Int64.self), gpuSeconds: try c.next()!.decode(Double.self),
                                 cacheReportedInputTokens: try c.next()!.decode(Int64.self), cachedInputTokens: try c.next()!.decode(Int64.self),
                                 windowSeconds: try c.next()!.decode(Double.self), provisionedGPUSeconds: try c.next()!.decode(Double?.self))
                if isTotal { total = r } else { rows.append(r) }
            }
            let t = total ?? StatsRow(group: Array(repeating: nil, count: columns), requests: 0, errors: 0, ttftMS: nil, tpotMS: nil, e2eMS: nil,
                                      queueMS: nil, outputTokens: 0, gpuSeconds: 0, windowSeconds: Double(query.to.microseconds - query.from.microseconds) / 1e6,
                                      provisionedGPUSeconds: nil)
            if columns == 0 { rows = [t] }
            return (rows, t)
        }
    }
}

/// One pool's GPUs now, for the pool gauges of `/metrics`.
public struct PoolNow: Sendable, Equatable {
    public var pool: String
    /// GPUs provisioned at the time asked about (the latest capacity event at or before it).
    public var provisionedGPUs: Int
    /// Busy GPUs (GPU-seconds / 3,600) in the last whole hour before the time asked about.
    public var busyGPUs: Double
}

extension StatsStore {
    /// Every registered pool's provisioned GPUs at `at` and busy GPUs in the hour before `at`'s hour.
    public func poolsNow(at: Timestamp) async throws -> [PoolNow] {
        let logger = self.logger
        let text = at.rfc3339
        return try await db.withConnection { conn in
            var out: [PoolNow] = []
            for try await (pool, gpus, busy) in try await conn.query("""
                SELECT p.name,
                       coalesce((SELECT c.gpus FROM pool_capacity c WHERE c.pool = p.name AND c.at <= \(text)::timestamptz
                                 ORDER BY c.at DESC LIMIT 1), 0)::bigint,
                       coalesce((SELECT sum(h.gpu_seconds) FROM usage_hourly_live h WHERE h.pool = p.name
                                 AND h.hour = date_trunc('hour', \(text)::timestamptz, 'UTC') - interval '1 hour'), 0)::float8 / 3600
                FROM pools p ORDER BY p.name
                """, logger: logger).decode((String, Int, Double).self) {
                out.append(PoolNow(pool: pool, provisionedGPUs: gpus, busyGPUs: busy))
            }
            return out
        }
    }

    /// One pool's hour: busy GPUs (GPU-seconds used / 3600) against provisioned GPUs (the
    /// time-weighted count over the hour).
    public struct PoolHour: Sendable, Equatable {
        public var pool: String
        public var hour: Timestamp
        public var busyGPUs: Double
        public var provisionedGPUs: Double
    }

    /// Every pool's hours in `[from, to)` (whole hours), in pool then hour order.
    public func poolHours(from: Timestamp, to: Timestamp) async throws -> [PoolHour] {
        let logger = self.logger
        let f = from.rfc3339, t = to.rfc3339
        return try await db.withConnection { conn in
            try await ReportSQL.noJIT(conn, logger)
            var out: [PoolHour] = []
            for try await (pool, hour, busy, provisioned) in try await conn.query("""
                WITH h AS (SELECT generate_series(\(f)::timestamptz, \(t)::timestamptz - interval '1 hour', interval '1 hour') AS hour),
                cap AS (SELECT pool, at AS s, coalesce(lead(at) OVER (PARTITION BY pool ORDER BY at), 'infinity') AS e, gpus FROM pool_capacity),
                u AS (SELECT pool, hour, sum(gpu_seconds) AS gpu_seconds FROM usage_hourly_live
                      WHERE hour >= \(f)::timestamptz AND hour < \(t)::timestamptz GROUP BY pool, hour)
                SELECT p.name, (extract(epoch FROM h.hour) * 1000000)::bigint, coalesce(u.gpu_seconds, 0)::float8 / 3600,
                       coalesce((SELECT sum(c.gpus * extract(epoch FROM least(c.e, h.hour + interval '1 hour') - greatest(c.s, h.hour)))
                                 FROM cap c WHERE c.pool = p.name AND c.s < h.hour + interval '1 hour' AND c.e > h.hour), 0)::float8 / 3600
                FROM pools p CROSS JOIN h LEFT JOIN u ON u.pool = p.name AND u.hour = h.hour
                ORDER BY p.name, h.hour
                """, logger: logger).decode((String, Int64, Double, Double).self) {
                out.append(PoolHour(pool: pool, hour: Timestamp(microseconds: hour), busyGPUs: busy, provisionedGPUs: provisioned))
            }
            return out
        }
    }

    /// Requests per hour (its start, in microseconds) and model in `[from, to)`, from the
    /// summaries: a version of each hour's records (it changes whenever one is added or deleted).
    public func hourlyRequestCounts(from: Timestamp, to: Timestamp, tenant: String?) async throws -> [Int64: [String: Int64]] {
        let logger = self.logger
        let f = from.rfc3339, t = to.rfc3339
        return try await db.withConnection { conn in
            var out: [Int64: [String: Int64]] = [:]
            let rows = try await conn.query("""
                SELECT (extract(epoch FROM hour) * 1000000)::bigint, model, n FROM (
                    SELECT hour, model, sum(requests)::bigint AS n FROM usage_hourly_live
                    WHERE hour >= \(f)::timestamptz AND hour < \(t)::timestamptz AND (\(tenant)::text IS NULL OR tenant = \(tenant))
                    GROUP BY 1, 2) s
                """, logger: logger)
            for try await (hour, model, requests) in rows.decode((Int64, String, Int64).self) where requests != 0 {
                out[hour, default: [:]][model] = requests
            }
            return out
        }
    }
}
