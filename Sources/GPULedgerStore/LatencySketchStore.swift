import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

/// One hour and model: the sums of its records and the sketches of their latency figures.
public struct HourSketch: Sendable, Equatable {
    public var requests: Int64 = 0
    public var errors: Int64 = 0
    public var inputTokens: Int64 = 0
    public var outputTokens: Int64 = 0
    public var gpuSeconds: Double = 0
    public var cacheInputTokens: Int64 = 0
    public var cachedInputTokens: Int64 = 0
    public var ttft = LatencySketch(), tpot = LatencySketch(), e2e = LatencySketch(), queue = LatencySketch()

    public init() {}

    public mutating func merge(_ o: HourSketch) {
        requests += o.requests
        errors += o.errors
        inputTokens += o.inputTokens
        outputTokens += o.outputTokens
        gpuSeconds += o.gpuSeconds
        cacheInputTokens += o.cacheInputTokens
        cachedInputTokens += o.cachedInputTokens
        ttft.merge(o.ttft)
        tpot.merge(o.tpot)
        e2e.merge(o.e2e)
        queue.merge(o.queue)
    }

    /// What a stored sketch is checked against: the hour's sums in the summaries.
    var fingerprint: Fingerprint { Fingerprint(requests: requests, errors: errors, inputTokens: inputTokens, outputTokens: outputTokens) }
}

struct Fingerprint: Equatable, Sendable {
    var requests, errors, inputTokens, outputTokens: Int64

    static let zero = Fingerprint(requests: 0, errors: 0, inputTokens: 0, outputTokens: 0)

    mutating func add(_ o: Fingerprint) {
        requests += o.requests; errors += o.errors; inputTokens += o.inputTokens; outputTokens += o.outputTokens
    }
}

/// An hour (its start, in microseconds) and a model.
public struct HourModel: Hashable, Sendable {
    public var hour: Int64
    public var model: String
}

/// The latency sketches per hour and model (`latency_sketches`, sql/0017): kept by the
/// background runner from the raw records (`HourSummaryKeeper`), read for any window (`window`), where an
/// hour whose stored sketch does not match the summaries, or the part of an hour at a window's
/// ends, is computed from the raw records on the spot. Both paths put values in buckets with the
/// same SQL, whose bucket is `LatencySketch.bucket(of:)`.
public struct LatencySketchStore: Sendable {
    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) { self.db = database }

    static let width = LatencySketch().bucketWidth

    /// The sketches of the records in `[from, to)` (of `model`, when given) per hour and model.
    static func fromRecords(_ conn: PostgresConnection, from: Timestamp, to: Timestamp, model: String?, logger: Logger) async throws -> [HourModel: HourSketch] {
        let f = from.rfc3339, t = to.rfc3339
        var out: [HourModel: HourSketch] = [:]
        // (Hours are grouped as timestamps and turned into microseconds after: `extract` is numeric.)
        let sums = try await conn.query("""
            SELECT (extract(epoch FROM h) * 1000000)::bigint, model, n, e, i, o, g, ci, c FROM (
                SELECT date_trunc('hour', started_at, 'UTC') AS h, model, count(*)::bigint AS n,
                       count(*) FILTER (WHERE status = 'error')::bigint AS e, coalesce(sum(input_tokens), 0)::bigint AS i,
                       coalesce(sum(output_tokens), 0)::bigint AS o, coalesce(sum(gpu_seconds), 0)::float8 AS g,
                       coalesce(sum(input_tokens) FILTER (WHERE cached_input_tokens IS NOT NULL), 0)::bigint AS ci,
                       coalesce(sum(cached_input_tokens), 0)::bigint AS c
                FROM usage_records WHERE started_at >= \(f)::timestamptz AND started_at < \(t)::timestamptz AND (\(model)::text IS NULL OR model = \(model))
                GROUP BY 1, 2) s
            """, logger: logger)
        for try await (hour, model, requests, errors, input, output, gpu, cacheInput, cached) in sums.decode((Int64, String, Int64, Int64, Int64, Int64, Double, Int64, Int64).self) {
            var s = HourSketch()
            (s.requests, s.errors, s.inputTokens, s.outputTokens, s.gpuSeconds, s.cacheInputTokens, s.cachedInputTokens) = (requests, errors, input, output, gpu, cacheInput, cached)
            out[HourModel(hour: hour, model: model)] = s
        }
        let width = Self.width
        let buckets = try await conn.query("""
            SELECT (extract(epoch FROM h) * 1000000)::bigint, model, metric, b, n FROM (
                SELECT r.h, r.model, v.metric, CASE WHEN v.x <= \(LatencySketch.minimum)::float8 THEN \(LatencySketch.zeroBucket)::int
                                                   ELSE ceil(ln(v.x) / \(width)::float8)::int END AS b, count(*)::bigint AS n
                FROM (SELECT date_trunc('hour', started_at, 'UTC') AS h, model, ttft_ms, tpot_ms, e2e_ms, queue_ms
                      FROM usage_records WHERE started_at >= \(f)::timestamptz AND started_at < \(t)::timestamptz
                      AND (\(model)::text IS NULL OR model = \(model))) r
                CROSS JOIN LATERAL (VALUES (0, r.ttft_ms), (1, r.tpot_ms), (2, r.e2e_ms), (3, r.queue_ms)) v(metric, x)
                WHERE v.x IS NOT NULL
                GROUP BY 1, 2, 3, 4) s
            """, logger: logger)
        for try await (hour, model, metric, bucket, n) in buckets.decode((Int64, String, Int32, Int32, Int64).self) {
            let key = HourModel(hour: hour, model: model)
            switch metric {
            case 0: out[key, default: HourSketch()].ttft.add(bucket: bucket, count: n)
            case 1: out[key, default: HourSketch()].tpot.add(bucket: bucket, count: n)
            case 2: out[key, default: HourSketch()].e2e.add(bucket: bucket, count: n)
            default: out[key, default: HourSketch()].queue.add(bucket: bucket, count: n)
            }
        }
        return out
    }

    /// Replaces the stored sketches of `hours` (sorted hour starts, µs) with those of their
    /// records now, in the caller's transaction (`HourSummaryKeeper`).
    static func replace(_ conn: PostgresConnection, hours: [Int64], runs: [(Timestamp, Timestamp)], logger: Logger) async throws {
        var sketches: [HourModel: HourSketch] = [:]
        for (s, e) in runs {
            sketches.merge(try await fromRecords(conn, from: s, to: e, model: nil, logger: logger)) { a, _ in a }
        }
        try await conn.query("""
            DELETE FROM latency_sketches WHERE hour IN (SELECT 'epoch'::timestamptz + x * interval '1 microsecond' FROM unnest(\(hours)::bigint[]) x)
            """, logger: logger)
        guard !sketches.isEmpty else { return }
        let rows = sketches.sorted { ($0.key.hour, $0.key.model) < ($1.key.hour, $1.key.model) }
        let hour = rows.map(\.key.hour), model = rows.map(\.key.model)
        let requests = rows.map(\.value.requests), errors = rows.map(\.value.errors)
        let input = rows.map(\.value.inputTokens), output = rows.map(\.value.outputTokens), gpu = rows.map(\.value.gpuSeconds)
        let cacheInput = rows.map(\.value.cacheInputTokens), cached = rows.map(\.value.cachedInputTokens)
        let ttft = rows.map { hex($0.value.ttft) }, tpot = rows.map { hex($0.value.tpot) }
        let e2e = rows.map { hex($0.value.e2e) }, queue = rows.map { hex($0.value.queue) }
        try await conn.query("""
            INSERT INTO latency_sketches (hour, model, requests, errors, input_tokens, output_tokens, gpu_seconds, cache_input_tokens,
                                          cached_input_tokens, ttft, tpot, e2e, queue)
            SELECT 'epoch'::timestamptz + h * interval '1 microsecond', m, r, e, i, o, g, ci, c,
                   decode(a, 'hex'), decode(b, 'hex'), decode(x, 'hex'), decode(q, 'hex')
            FROM unnest(\(hour)::bigint[], \(model)::text[], \(requests)::bigint[], \(errors)::bigint[], \(input)::bigint[],
                        \(output)::bigint[], \(gpu)::float8[], \(cacheInput)::bigint[], \(cached)::bigint[], \(ttft)::text[],
                        \(tpot)::text[], \(e2e)::text[], \(queue)::text[]) AS u(h, m, r, e, i, o, g, ci, c, a, b, x, q)
            """, logger: logger)
    }

    /// `k`'s bytes in hex, as `decode(…, 'hex')` reads them.
    static func hex(_ k: LatencySketch) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in k.encoded() { out += [digits[Int(b >> 4)], digits[Int(b & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }

    /// The hours of a window and where their figures came from.
    public struct Window: Sendable {
        /// Per hour and model, the window's records (whole hours and the parts at its ends).
        public var pieces: [HourModel: HourSketch]
        /// Whole hours answered by stored sketches, and hours (or parts) computed from the records.
        public var storedHours: Int
        public var computedHours: Int
    }

    /// Where a window's sums are read: per hour and model, or per UTC day and model.
    enum Sums {
        case hourly, daily
        /// The `_live` summary (with the deltas not folded yet) and its time column.
        var table: String { self == .hourly ? "usage_hourly_live" : "usage_daily_fleet_live" }
        var column: String { self == .hourly ? "hour" : "day" }
    }

    /// The sums per hour or day (`by`) and model in `[from, to)`, without the models' rows that
    /// sum to no requests.
    static func sums(_ conn: PostgresConnection, _ by: Sums, from: Timestamp, to: Timestamp, model: String?,
                     logger: Logger) async throws -> [Int64: [String: Fingerprint]] {
        let (a, b) = (from.rfc3339, to.rfc3339)
        let (table, column) = (by.table, by.column)
        var out: [Int64: [String: Fingerprint]] = [:]
        for try await (t, m, requests, errors, input, output) in try await conn.query("""
            SELECT (extract(epoch FROM t) * 1000000)::bigint, model, r, e, i, o FROM (
                SELECT \(unescaped: column) AS t, model, sum(requests)::bigint AS r, sum(errors)::bigint AS e,
                       sum(input_tokens)::bigint AS i, sum(output_tokens)::bigint AS o
                FROM \(unescaped: table) WHERE \(unescaped: column) >= \(a)::timestamptz AND \(unescaped: column) < \(b)::timestamptz
                AND (\(model)::text IS NULL OR model = \(model))
                GROUP BY 1, 2 HAVING sum(requests) <> 0) s
            """, logger: logger).decode((Int64, String, Int64, Int64, Int64, Int64).self) {
            out[t, default: [:]][m] = Fingerprint(requests: requests, errors: errors, inputTokens: input, outputTokens: output)
        }
        return out
    }

    /// The sketches of `[from, to)` (of `model`, when given), in one snapshot; nil when its whole
    /// hours hold fewer than `minimumRequests` records (the summaries say so before any sketch is
    /// read), for a caller that computes small windows exactly.
    public func window(from: Timestamp, to: Timestamp, model: String?, minimumRequests: Int64 = 0) async throws -> Window? {
        let logger = self.logger
        let hour = Timestamp.hour
        let h0 = Timestamp(microseconds: (from.microseconds + hour - 1).floorDivided(by: hour) * hour)
        let h1 = to.hourStart
        return try await db.withConnection { conn in
            try await conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                let result = try await Self.window(conn, from: from, to: to, h0: h0, h1: h1, model: model, minimumRequests: minimumRequests, logger: logger)
                try await conn.query("COMMIT", logger: logger)
                return result
            } catch {
                _ = try? await conn.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    static func window(_ conn: PostgresConnection, from: Timestamp, to: Timestamp, h0: Timestamp, h1: Timestamp, model: String?,
                       minimumRequests: Int64, logger: Logger) async throws -> Window? {
        var pieces: [HourModel: HourSketch] = [:]
        var stored = 0, computed = 0
        guard h0 < h1 else {
            guard minimumRequests <= 0 else { return nil }
            let p = try await fromRecords(conn, from: from, to: to, model: model, logger: logger)
            return Window(pieces: p, storedHours: 0, computedHours: p.isEmpty ? 0 : 1)
        }
        // The whole hours' sums in the summaries: what a stored sketch must match. Whole UTC days
        // are checked by day (usage_daily_fleet: a few rows per day and model, where the hours of
        // a week are 50,000 rows of usage_hourly, 54 ms at 10 M records); a day whose sums differ,
        // or whose records changed since the hour keeper last ran (a dirty mark, a delta not
        // folded), is checked hour by hour.
        let day = Timestamp.day
        let d0 = Timestamp(microseconds: (h0.microseconds + day - 1).floorDivided(by: day) * day)
        let d1 = Timestamp(microseconds: max(h1.microseconds.floorDivided(by: day) * day, d0.microseconds))
        var expected: [Int64: [String: Fingerprint]] = [:]
        var byDay: [Int64: [String: Fingerprint]] = [:]
        var total: Int64 = 0
        for (s, e) in [(h0, min(d0, h1)), (max(d1, d0), h1)] where s < e {
            for (h, models) in try await sums(conn, .hourly, from: s, to: e, model: model, logger: logger) {
                expected[h] = models
                total += models.values.reduce(0) { $0 + $1.requests }
            }
        }
        var suspect = Set<Int64>()
        if d0 < d1 {
            byDay = try await sums(conn, .daily, from: d0, to: d1, model: model, logger: logger)
            total += byDay.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.requests } }
            let (a, b) = (d0.rfc3339, d1.rfc3339)
            for try await d in try await conn.query("""
                SELECT DISTINCT (extract(epoch FROM date_trunc('day', hour, 'UTC')) * 1000000)::bigint FROM (
                    SELECT hour FROM hour_summaries_dirty WHERE hour >= \(a)::timestamptz AND hour < \(b)::timestamptz
                    UNION ALL SELECT hour FROM usage_delta WHERE hour >= \(a)::timestamptz AND hour < \(b)::timestamptz) x
                """, logger: logger).decode(Int64.self) { suspect.insert(d) }
        }
        if total < minimumRequests { return nil }
        let (a, b) = (h0.rfc3339, h1.rfc3339)
        var found: [Int64: [String: HourSketch]] = [:]
        // (Cell by cell: a 13-element tuple decode looks its generic metadata up on every row.)
        for try await row in try await conn.query("""
            SELECT (extract(epoch FROM hour) * 1000000)::bigint, model, requests, errors, input_tokens, output_tokens, gpu_seconds,
                   cache_input_tokens, cached_input_tokens, ttft, tpot, e2e, queue
            FROM latency_sketches WHERE hour >= \(a)::timestamptz AND hour < \(b)::timestamptz AND (\(model)::text IS NULL OR model = \(model))
            """, logger: logger) {
            var c = row.makeIterator()
            let h = try c.next()!.decode(Int64.self), m = try c.next()!.decode(String.self)
            var s = HourSketch()
            s.requests = try c.next()!.decode(Int64.self)
            s.errors = try c.next()!.decode(Int64.self)
            s.inputTokens = try c.next()!.decode(Int64.self)
            s.outputTokens = try c.next()!.decode(Int64.self)
            s.gpuSeconds = try c.next()!.decode(Double.self)
            s.cacheInputTokens = try c.next()!.decode(Int64.self)
            s.cachedInputTokens = try c.next()!.decode(Int64.self)
            var sketches: [LatencySketch] = []
            for _ in 0..<4 {
                guard let bytes = c.next()?.bytes, let k = bytes.withUnsafeReadableBytes({ LatencySketch(encoded: $0.assumingMemoryBound(to: UInt8.self)) }) else { break }
                sketches.append(k)
            }
            guard sketches.count == 4 else { continue } // unreadable: the hour is computed from its records
            (s.ttft, s.tpot, s.e2e, s.queue) = (sketches[0], sketches[1], sketches[2], sketches[3])
            found[h, default: [:]][m] = s
        }
        // Whole days: the day's sketches summed per model against the day's sums.
        var recheck: [Int64] = [] // days to check hour by hour
        var d = d0.microseconds
        while d < d1.microseconds {
            defer { d += day }
            var summed: [String: Fingerprint] = [:]
            var hours = 0
            for h in stride(from: d, to: d + day, by: Int(Timestamp.hour)) {
                guard let models = found[h] else { continue }
                hours += 1
                for (m, k) in models { summed[m, default: .zero].add(k.fingerprint) }
            }
            if !suspect.contains(d), summed == (byDay[d] ?? [:]) {
                for h in stride(from: d, to: d + day, by: Int(Timestamp.hour)) {
                    for (m, k) in found[h] ?? [:] { pieces[HourModel(hour: h, model: m)] = k }
                }
                stored += hours
            } else {
                recheck.append(d)
            }
        }
        // Their hours' sums, a run of consecutive days per query (a backfill marks many days).
        var i = 0
        while i < recheck.count {
            var j = i
            while j + 1 < recheck.count && recheck[j + 1] == recheck[j] + day { j += 1 }
            for (h, models) in try await sums(conn, .hourly, from: Timestamp(microseconds: recheck[i]),
                                              to: Timestamp(microseconds: recheck[j] + day), model: model, logger: logger) {
                expected[h] = models
            }
            i = j + 1
        }
        var stale: [Int64] = []
        for (h, models) in expected.sorted(by: { $0.key < $1.key }) {
            if let have = found[h], have.mapValues(\.fingerprint) == models {
                for (m, s) in have { pieces[HourModel(hour: h, model: m)] = s }
                stored += 1
            } else {
                stale.append(h)
            }
        }
        // Stale hours, a run of consecutive hours per query; then the window's ends.
        var ranges = HourSummaryKeeper.runs(stale)
        computed += stale.count
        if from < h0 { ranges.append((from, h0)); computed += 1 }
        if h1 < to { ranges.append((h1, to)); computed += 1 }
        for (s, e) in ranges {
            for (key, piece) in try await fromRecords(conn, from: s, to: e, model: model, logger: logger) { pieces[key, default: HourSketch()].merge(piece) }
        }
        return Window(pieces: pieces, storedHours: stored, computedHours: computed)
    }
}
