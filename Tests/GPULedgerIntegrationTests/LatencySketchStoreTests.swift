import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import HummingbirdTesting
import PostgresNIO
import Testing

/// The hourly latency sketches (sql/0017): within 1% of the exact percentiles over any window,
/// never counting a record wrong when they are stale, and bucketed by PostgreSQL as the core does.
@Suite struct LatencySketchStoreTests {
    static let month = "from=2026-10-01&to=2026-11-01"

    func keep(_ t: TestApp) async throws -> Int {
        try await t.database.withDatabase { db in
            _ = try await UsageStore(database: db).foldSummaries()
            return try await HourSummaryKeeper(database: db).keep(before: Timestamp.parseRFC3339("2027-01-01T00:00:00Z")!, limit: 100_000)
        }
    }

    func answer(_ t: TestApp, _ query: CostQuery, _ choice: PercentileChoice) async throws -> StatsAnswer {
        try await t.database.withDatabase { db in try await StatsStore(database: db).stats(query, percentiles: choice) }
    }

    /// Sketched rows against exact rows: the same groups and counts, each percentile within 1%.
    func expectClose(_ sketched: StatsAnswer, _ exact: StatsAnswer, _ context: String) {
        #expect(sketched.sketched && !exact.sketched)
        #expect(sketched.rows.map(\.group) == exact.rows.map(\.group), "\(context)")
        for (s, e) in zip(sketched.rows + [sketched.total], exact.rows + [exact.total]) {
            #expect(s.requests == e.requests && s.errors == e.errors && s.outputTokens == e.outputTokens, "\(context) \(s.group)")
            #expect(s.cachedInputTokens == e.cachedInputTokens && s.cacheReportedInputTokens == e.cacheReportedInputTokens)
            #expect(abs(s.gpuSeconds - e.gpuSeconds) <= 1e-6 * max(1, e.gpuSeconds) && s.windowSeconds == e.windowSeconds, "\(context) \(s.group)")
            for (name, a, b) in [("ttft", s.ttftMS, e.ttftMS), ("tpot", s.tpotMS, e.tpotMS), ("e2e", s.e2eMS, e.e2eMS), ("queue", s.queueMS, e.queueMS)] {
                #expect((a == nil) == (b == nil), "\(context) \(s.group) \(name)")
                guard let a, let b else { continue }
                for (x, y) in [(a.p50, b.p50), (a.p95, b.p95), (a.p99, b.p99)] {
                    #expect(y == 0 ? x == 0 : abs(x - y) / y <= 0.01, "\(context) \(s.group) \(name): \(x) against \(y)")
                }
            }
        }
    }

    /// Records over 10 days with every latency figure, queue times (some 0) on every third.
    static func records(_ range: Range<Int>) -> String {
        range.map { i -> String in
            var line = SampleRecords.json(i, spanSeconds: 10 * 86_400)
            if i % 3 == 0 { line = String(line.dropLast()) + ",\"queue_ms\":\(i % 7 == 0 ? 0 : Double(i % 500) / 3)}" }
            return line
        }.joined(separator: "\n") + "\n"
    }

    /// A fresh service with `range`'s records (`records`) posted.
    static func posted(_ range: Range<Int>) async throws -> TestApp {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let posted = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: records(range))
            #expect(posted.status == .ok)
        }
        return t
    }

    @Test func sketchedStatsAreWithinOnePercentOfTheExactOnes() async throws {
        let t = try await Self.posted(0..<6000)
        #expect(try await keep(t) > 230) // the hours of 10 days of records
        let f = Timestamp.parseRFC3339("2026-10-01T05:30:00Z")!, e = Timestamp.parseRFC3339("2026-10-09T17:15:00Z")!
        for groupBy: [GroupKey] in [[], [.model], [.model, .day], [.hour], [.month, .model]] {
            let q = CostQuery(from: f, to: e, groupBy: groupBy)
            let sketched = try await answer(t, q, .sketch)
            expectClose(sketched, try await answer(t, q, .exact), "\(groupBy)")
            // Every whole hour from its stored sketch; the two part hours at the ends from the records.
            #expect(sketched.storedHours > 180 && sketched.computedHours == 2, "\(sketched.storedHours) \(sketched.computedHours)")
        }
        // One latency per hour and model (the Models page's chart), as grouping by model and hour gives it.
        let window = try #require(try await t.database.withDatabase { db in
            try await StatsStore(database: db).sketchWindow(CostQuery(from: f, to: e, groupBy: [.model]), .sketch)
        })
        let hourly = StatsStore.hourly(window, { $0.ttft }, quantile: 0.95)
        let byHour = StatsStore.answer(window, CostQuery(from: f, to: e, groupBy: [.model, .hour])).rows
        #expect(byHour.count > 180 && hourly.values.reduce(0) { $0 + $1.count } == byHour.count)
        for row in byHour {
            let point = hourly[Timestamp.parseRFC3339(row.group[1]!)!.microseconds]?[row.group[0]!]
            #expect(point?.requests == row.requests && point?.value == row.ttftMS?.p95, "\(row.group)")
        }

        var one = CostQuery(from: f, to: e, groupBy: [.day])
        one.model = "llama-3.1-8b"
        expectClose(try await answer(t, one, .sketch), try await answer(t, one, .exact), "one model")

        // Over HTTP: a window this small is exact unless asked; exact=false sketches it; a
        // tenant's figures are always exact (the sketches are the fleet's).
        try await t.application().test(.router) { client in
            let auto = try await client.get("/v1/stats?\(Self.month)&group_by=model", key: t.financeKey)
            #expect((auto.json["percentile_method"] as? String)?.hasPrefix("exact") == true)
            let sketch = try await client.get("/v1/stats?\(Self.month)&group_by=model&exact=false", key: t.financeKey)
            #expect((sketch.json["percentile_method"] as? String)?.hasPrefix("sketch, ±1%") == true, "\(sketch.body.prefix(300))")
            #expect((sketch.json["rows"] as? [Any])?.count == SampleRecords.models.count)
            let tenant = try await client.get("/v1/stats?\(Self.month)&group_by=model&exact=false&tenant=tenant-1", key: t.financeKey)
            #expect((tenant.json["percentile_method"] as? String)?.hasPrefix("exact") == true)
            let bad = try await client.get("/v1/stats?\(Self.month)&exact=yes", key: t.financeKey)
            #expect(bad.status == .badRequest && bad.body.contains("exact=yes must be true or false"))
        }
    }

    /// Records added to (or deleted from) hours already sketched: those hours are computed from
    /// the records until the sketches are kept again, so counts never go wrong.
    @Test func aStaleHourIsComputedFromItsRecords() async throws {
        let t = try await Self.posted(0..<3000)
        _ = try await keep(t)
        let q = CostQuery(from: Timestamp.parseRFC3339("2026-10-01T00:00:00Z")!, to: Timestamp.parseRFC3339("2026-11-01T00:00:00Z")!, groupBy: [.model])
        let before = try await answer(t, q, .sketch)
        #expect(before.computedHours == 0 && before.total.requests == 3000)
        // More records into the same month, not folded: the summaries' live view counts them.
        try await t.application().test(.router) { client in
            let posted = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: Self.records(3000..<3500))
            #expect(posted.status == .ok)
        }
        let added = try await answer(t, q, .sketch)
        #expect(added.total.requests == 3500 && added.computedHours > 100)
        expectClose(added, try await answer(t, q, .exact), "added")
        // Retention deletes the first four days.
        let deleted = try await t.database.withDatabase { db in
            try await UsageStore(database: db).deleteBatch(startedBefore: Timestamp.parseRFC3339("2026-10-05T00:00:00Z")!, limit: 100_000)
        }
        #expect(deleted > 1000)
        let pruned = try await answer(t, q, .sketch)
        #expect(pruned.total.requests == 3500 - Int64(deleted))
        expectClose(pruned, try await answer(t, q, .exact), "deleted")
        // Kept again: every hour from its sketch, the deleted hours' sketches gone.
        #expect(try await keep(t) > 90)
        let kept = try await answer(t, q, .sketch)
        #expect(kept.computedHours == 0 && kept.total.requests == pruned.total.requests)
        expectClose(kept, try await answer(t, q, .exact), "kept")
        let early = try await t.database.withDatabase { db in
            try await db.withConnection { conn in
                var n = 0
                for try await c in try await conn.query("SELECT count(*)::int FROM latency_sketches WHERE hour < '2026-10-05'", logger: TestDatabase.logger)
                    .decode(Int.self) { n = c }
                return n
            }
        }
        #expect(early == 0)
    }

    /// Whole days are checked against the daily sums: a day whose sketches do not add up to them
    /// is checked hour by hour, and so is a day with a dirty mark, even when its sketches'
    /// errors cancel out over the day.
    @Test func aDayWhoseSketchesDoNotAddUpIsCheckedHourByHour() async throws {
        let t = try await Self.posted(0..<3000)
        _ = try await keep(t)
        let q = CostQuery(from: Timestamp.parseRFC3339("2026-10-01T00:00:00Z")!, to: Timestamp.parseRFC3339("2026-11-01T00:00:00Z")!, groupBy: [.model])
        let clean = try await answer(t, q, .sketch)
        #expect(clean.computedHours == 0 && clean.storedHours > 230 && clean.total.requests == 3000)
        func sql(_ text: String) async throws {
            try await t.database.withDatabase { db in
                try await db.withConnection { conn in _ = try await conn.query(PostgresQuery(unsafeSQL: text), logger: TestDatabase.logger) }
            }
        }
        // One hour's sketch counts a request too many: its day no longer adds up.
        try await sql("""
            UPDATE latency_sketches SET requests = requests + 1
            WHERE (hour, model) = (SELECT hour, model FROM latency_sketches WHERE hour >= '2026-10-03' ORDER BY hour, model LIMIT 1)
            """)
        let wrong = try await answer(t, q, .sketch)
        #expect(wrong.computedHours == 1 && wrong.total.requests == 3000, "\(wrong.computedHours) \(wrong.total.requests)")
        expectClose(wrong, try await answer(t, q, .exact), "one hour wrong")
        // Undone, then two hours of one model wrong the other way round (the day adds up), with
        // a dirty mark in another hour of that day: the two hours are computed from the records.
        try await sql("""
            UPDATE latency_sketches SET requests = requests - 1
            WHERE (hour, model) = (SELECT hour, model FROM latency_sketches WHERE hour >= '2026-10-03' ORDER BY hour, model LIMIT 1)
            """)
        try await sql("""
            WITH m AS (SELECT model FROM latency_sketches WHERE hour >= '2026-10-04' AND hour < '2026-10-05'
                       GROUP BY model HAVING count(*) >= 2 ORDER BY model LIMIT 1),
                 h AS (SELECT hour FROM latency_sketches WHERE model = (SELECT model FROM m) AND hour >= '2026-10-04' AND hour < '2026-10-05'
                       ORDER BY hour LIMIT 2)
            UPDATE latency_sketches SET requests = requests + CASE WHEN hour = (SELECT min(hour) FROM h) THEN 1 ELSE -1 END
            WHERE model = (SELECT model FROM m) AND hour IN (SELECT hour FROM h)
            """)
        try await sql("INSERT INTO hour_summaries_dirty (hour) VALUES ('2026-10-04T23:00:00Z')")
        let marked = try await answer(t, q, .sketch)
        #expect(marked.computedHours == 2 && marked.total.requests == 3000, "\(marked.computedHours) \(marked.total.requests)")
        expectClose(marked, try await answer(t, q, .exact), "a marked day")
    }

    /// PostgreSQL buckets an hour's values as `LatencySketch.add` does: the stored sketch equals
    /// the one the core makes of the same values.
    @Test func theStoredSketchIsTheCoresSketchOfTheSameValues() async throws {
        let t = try await Self.posted(0..<4000)
        _ = try await keep(t)
        let (values, stored) = try await t.database.withDatabase { db in
            try await db.withConnection { conn -> ([String: [[Double?]]], [String: [LatencySketch]]) in
                var values: [String: [[Double?]]] = [:]
                for try await (model, a, b, c, d) in try await conn.query("""
                    SELECT model, ttft_ms, tpot_ms, e2e_ms, queue_ms FROM usage_records
                    WHERE started_at >= '2026-10-01' AND started_at < '2026-10-04'
                    """, logger: TestDatabase.logger).decode((String, Double?, Double?, Double?, Double?).self) {
                    values[model, default: []].append([a, b, c, d])
                }
                var stored: [String: [LatencySketch]] = [:]
                for try await (model, a, b, c, d) in try await conn.query("""
                    SELECT model, ttft, tpot, e2e, queue FROM latency_sketches WHERE hour >= '2026-10-01' AND hour < '2026-10-04'
                    """, logger: TestDatabase.logger).decode((String, ByteBuffer, ByteBuffer, ByteBuffer, ByteBuffer).self) {
                    var merged = stored[model] ?? Array(repeating: LatencySketch(), count: 4)
                    for (i, bytes) in [a, b, c, d].enumerated() { merged[i].merge(try #require(LatencySketch(encoded: Array(bytes.readableBytesView)))) }
                    stored[model] = merged
                }
                return (values, stored)
            }
        }
        #expect(values.count == SampleRecords.models.count && Set(values.keys) == Set(stored.keys))
        for (model, rows) in values {
            var mine = Array(repeating: LatencySketch(), count: 4)
            for row in rows { for (i, v) in row.enumerated() { if let v { mine[i].add(v) } } }
            #expect(mine == stored[model], "\(model)")
        }
    }
}
