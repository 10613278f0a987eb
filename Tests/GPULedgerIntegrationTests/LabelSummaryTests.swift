import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import HummingbirdTesting
import PostgresNIO
import Testing

/// The label summary (sql/0017): a cost report grouped by a label gives, to the cent and the
/// token, what the raw records give, whether its hours are summarized, stale or not yet kept,
/// in a pool that allocates by tokens too; a key with too many values is left to the records.
@Suite struct LabelSummaryTests {
    func keep(_ t: TestApp) async throws -> Int {
        try await t.database.withDatabase { db in
            _ = try await UsageStore(database: db).foldSummaries()
            return try await HourSummaryKeeper(database: db).keep(before: Timestamp.parseRFC3339("2027-01-01T00:00:00Z")!, limit: 100_000)
        }
    }

    /// The report from the label summary, and from the raw records alone.
    func both(_ t: TestApp, _ query: CostQuery) async throws -> (CostReport, CostReport) {
        try await t.database.withDatabase { db in
            let store = CostStore(database: db)
            var raw = query
            raw.rawOnly = true
            return (try await store.costs(query), try await store.costs(raw))
        }
    }

    func scalar(_ t: TestApp, _ sql: String) async throws -> String {
        try await t.database.withDatabase { db in
            try await db.withConnection { conn in
                var out = ""
                for try await v in try await conn.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).decode(String.self) { out = v }
                return out
            }
        }
    }

    /// Sample records over 10 days.
    static func records(_ range: Range<Int>) -> String {
        range.map { SampleRecords.json($0, spanSeconds: 10 * 86_400) }.joined(separator: "\n") + "\n"
    }

    static let queries: [CostQuery] = {
        let f = Timestamp.parseRFC3339("2026-10-01T00:00:00Z")!, e = Timestamp.parseRFC3339("2026-11-01T00:00:00Z")!
        let f2 = Timestamp.parseRFC3339("2026-10-03T07:20:00Z")!, e2 = Timestamp.parseRFC3339("2026-10-09T13:45:00Z")!
        var tenant = CostQuery(from: f2, to: e2, groupBy: [.label("team")])
        tenant.tenant = "tenant-3"
        var pool = CostQuery(from: f, to: e, groupBy: [.label("team"), .day])
        pool.pool = "h100-pool"
        return [CostQuery(from: f, to: e, groupBy: [.label("team")]), CostQuery(from: f2, to: e2, groupBy: [.tenant, .label("team")]),
                CostQuery(from: f, to: e, groupBy: [.label("env"), .model]), CostQuery(from: f, to: e, groupBy: [.label("missing")]),
                tenant, pool]
    }()

    @Test func aLabelReportFromTheSummaryEqualsTheRawRecords() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            // The H100 pool shares each hour's paid cost by token weight.
            let pool = try await client.put("/v1/pools/h100-pool", key: t.adminKey, body: """
                {"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand","usd_per_gpu_hour":"3.6","allocation":"tokens"}
                """)
            #expect(pool.status == .created || pool.status == .ok, "\(pool.body)")
            let capacity = try await client.post("/v1/pools/h100-pool/capacity", key: t.adminKey, body: #"{"at":"2026-10-01","gpus":2}"#)
            #expect(capacity.status == .created)
            let posted = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: Self.records(0..<4000))
            #expect(posted.status == .ok)
        }
        // Not kept yet: every hour is read from its records.
        for q in Self.queries {
            let (summary, raw) = try await both(t, q)
            #expect(summary == raw, "\(q.groupBy)")
        }
        #expect(try await keep(t) > 230)
        #expect(try await scalar(t, "SELECT count(*)::text FROM usage_label_hourly WHERE key = 'team'") != "0")
        for q in Self.queries {
            let (summary, raw) = try await both(t, q)
            #expect(summary == raw, "\(q.groupBy) \(q.tenant ?? "") \(q.pool ?? "")")
            #expect(summary.total.requests > 0 || q.tenant != nil)
        }
        // Stale hours (new records, then deletes) are read from their records until kept again.
        try await t.application().test(.router) { client in
            let posted = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: Self.records(4000..<4600))
            #expect(posted.status == .ok)
        }
        for q in Self.queries {
            let (summary, raw) = try await both(t, q)
            #expect(summary == raw, "added: \(q.groupBy)")
        }
        _ = try await t.database.withDatabase { db in
            try await UsageStore(database: db).deleteBatch(startedBefore: Timestamp.parseRFC3339("2026-10-04T00:00:00Z")!, limit: 100_000)
        }
        #expect(try await keep(t) > 90)
        for q in Self.queries {
            let (summary, raw) = try await both(t, q)
            #expect(summary == raw, "deleted and kept: \(q.groupBy)")
        }
        try await t.application().test(.router) { client in
            let page = try await client.get("/v1/costs?from=2026-10-01&to=2026-11-01&group_by=label:team", key: t.financeKey)
            #expect(page.status == .ok && (page.json["rows"] as? [Any])?.count == 8)
        }
        // Kept days are read from the daily label rows, and a `tokens` pool's from the hourly ones,
        // not from the records: a row changed by hand in each shows.
        _ = try await scalar(t, """
            WITH one AS (SELECT ctid FROM usage_label_daily WHERE key = 'team' AND day >= '2026-10-05' AND pool <> 'h100-pool' LIMIT 1)
            UPDATE usage_label_daily SET requests = requests + 1 WHERE ctid IN (SELECT ctid FROM one) RETURNING 'x'
            """)
        _ = try await scalar(t, """
            WITH one AS (SELECT ctid FROM usage_label_hourly WHERE key = 'team' AND hour >= '2026-10-05' AND pool = 'h100-pool' LIMIT 1)
            UPDATE usage_label_hourly SET requests = requests + 1 WHERE ctid IN (SELECT ctid FROM one) RETURNING 'x'
            """)
        let (changed, raw) = try await both(t, Self.queries[0])
        func labelled(_ r: CostReport) -> Int64 { r.rows.filter { $0.group[0] != nil }.map(\.requests).reduce(0, +) }
        #expect(labelled(changed) == labelled(raw) + 2) // (and records without the label two fewer: the totals hold)
    }

    /// A key with more than 1,000 values in an hour is not summarized for that hour; its
    /// reports still add up, read from the records.
    @Test func aKeyWithTooManyValuesIsLeftToTheRecords() async throws {
        let t = try await TestApp.make()
        let at = Timestamp.parseRFC3339("2026-10-05T10:00:00Z")!
        let lines = (0..<1200).map { i in
            SampleRecords.record("w\(i)", tenant: "acme", ["started_at": "\"\(at.adding(seconds: Int64(i)).rfc3339)\"",
                                                            "labels": "{\"user\":\"u-\(i)\",\"team\":\"t-\(i % 3)\"}"])
        }
        try await t.application().test(.router) { client in
            let posted = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: lines.joined(separator: "\n") + "\n")
            #expect(posted.status == .ok)
        }
        #expect(try await keep(t) == 1)
        #expect(try await scalar(t, "SELECT array_to_string(unsummarized, ',') FROM label_hours") == "user")
        #expect(try await scalar(t, "SELECT count(DISTINCT key)::text FROM usage_label_hourly") == "1")
        for key in ["user", "team"] {
            let q = CostQuery(from: Timestamp.parseRFC3339("2026-10-01T00:00:00Z")!, to: Timestamp.parseRFC3339("2026-11-01T00:00:00Z")!,
                              groupBy: [.label(key)])
            let (summary, raw) = try await both(t, q)
            #expect(summary == raw && summary.rows.count == (key == "user" ? 1200 : 3), "\(key)")
        }
    }
}
