import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import HummingbirdTesting
import PostgresNIO
import Testing

/// The summaries (hourly, daily, the fleet's daily) stay equal to the raw records through ingest, resends, partial
/// duplicates and deletes, read live (summary plus deltas not folded yet) and after a fold, and a
/// report reflects a batch as soon as its ingest is acknowledged, folded or not.
@Suite struct RollupTests {
    /// Rows that differ between `table` and the raw records summed per `unit` and `keys`, and
    /// the table's row count.
    static func mismatch(_ table: String, unit: String, keys: String) -> String {
        let time = unit == "hour" ? "hour" : "day"
        return """
            WITH raw AS (
                SELECT date_trunc('\(unit)', started_at, 'UTC') AS t, \(keys.replacingOccurrences(of: "pool", with: "coalesce(pool, '') AS pool")),
                       count(*) AS requests, count(*) FILTER (WHERE status = 'error') AS errors, sum(gpu_seconds) AS gpu_seconds,
                       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
                FROM usage_records GROUP BY date_trunc('\(unit)', started_at, 'UTC'), \(keys.replacingOccurrences(of: "pool", with: "coalesce(pool, '')"))
            ), rolled AS (
                SELECT \(time) AS t, \(keys), sum(requests)::bigint AS requests, sum(errors)::bigint AS errors, sum(gpu_seconds) AS gpu_seconds,
                       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens
                FROM \(table) GROUP BY \(time), \(keys) HAVING sum(requests) <> 0)
            SELECT (SELECT count(*) FROM (SELECT * FROM raw EXCEPT SELECT * FROM rolled) a) + (SELECT count(*) FROM (SELECT * FROM rolled EXCEPT SELECT * FROM raw) b),
                   (SELECT count(*) FROM rolled)
            """
    }

    /// Mismatches and the smallest row count of usage_hourly, usage_daily and usage_daily_fleet
    /// (`live`: their views with the deltas not folded yet).
    func mismatches(_ t: TestApp, live: Bool) async throws -> (Int64, Int64) {
        let suffix = live ? "_live" : ""
        let checks = [Self.mismatch("usage_hourly" + suffix, unit: "hour", keys: "tenant, model, accelerator, pool"),
                      Self.mismatch("usage_daily" + suffix, unit: "day", keys: "tenant, model, accelerator, pool"),
                      Self.mismatch("usage_daily_fleet" + suffix, unit: "day", keys: "model, accelerator, pool")]
        return try await t.database.withDatabase { db in
            try await db.withConnection { conn in
                var bad: Int64 = 0, rows: Int64 = 0
                for sql in checks {
                    for try await (b, r) in try await conn.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).decode((Int64, Int64).self) {
                        bad += b
                        rows = min(rows == 0 ? r : rows, r)
                    }
                }
                return (bad, rows)
            }
        }
    }

    func fold(_ t: TestApp) async throws -> Int64 {
        try await t.database.withDatabase { db in try await UsageStore(database: db).foldSummaries() }
    }

    func deltaRows(_ t: TestApp) async throws -> Int {
        try await t.database.withDatabase { db in
            try await db.withConnection { conn in
                var n = 0
                for try await c in try await conn.query("SELECT count(*)::int FROM usage_delta", logger: TestDatabase.logger).decode(Int.self) { n = c }
                return n
            }
        }
    }

    @Test func theRollupEqualsTheRawRecordsThroughResendsAndDeletes() async throws {
        let t = try await TestApp.make()
        let before = try await t.application().test(.router) { client in
            let first = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: SampleRecords.ndjson(0..<3000))
            #expect(first.status == .ok)
            // A resend of half of it with new records: the staging path, only new rows added.
            let second = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: SampleRecords.ndjson(1500..<4000))
            #expect(second.json["accepted"] as? Int == 1000)
            #expect(second.json["duplicates"] as? Int == 1500)
            let total = try await client.get("/v1/costs?from=2026-01-01&to=2027-01-01", key: t.financeKey).json["total"] as? [String: Any]
            #expect(total?["requests"] as? Int == 4000)
            var answers: [String] = []
            for uri in Self.reports { answers.append(try await client.get(uri, key: t.financeKey).body) }
            return answers
        }
        #expect(before.allSatisfy { $0.contains(#""rows":[{"#) }, "\(before)")
        // Nothing folded yet: the summaries are empty and the live views alone are right.
        #expect(try await deltaRows(t) > 0)
        var (bad, rows) = try await mismatches(t, live: true)
        #expect(bad == 0)
        #expect(rows > 20) // the smallest summary, the fleet's: 30 days × models × accelerators
        #expect(try await fold(t) > 0)
        #expect(try await deltaRows(t) == 0)
        (bad, rows) = try await mismatches(t, live: false)
        #expect(bad == 0 && rows > 20)
        #expect(try await mismatches(t, live: true).0 == 0)
        #expect(try await fold(t) == 0)
        // The same reports from the folded summaries.
        try await t.application().test(.router) { client in
            for (uri, old) in zip(Self.reports, before) {
                let now = try await client.get(uri, key: t.financeKey).body
                #expect(now == old, "\(uri)")
            }
        }
        // Deleting (the retention job) takes the records out of the rollup too: live at once, and folded.
        let cutoff = Timestamp.parseRFC3339("2026-10-15T00:00:00Z")!
        let deleted = try await t.database.withDatabase { db in try await UsageStore(database: db).deleteBatch(startedBefore: cutoff, limit: 700) }
        #expect(deleted == 700)
        #expect(try await mismatches(t, live: true).0 == 0)
        #expect(try await fold(t) > 0)
        #expect(try await mismatches(t, live: false).0 == 0)
        #expect(try await deltaRows(t) == 0)
    }

    /// The fold's two parts (sql/0019): part 0 folds the deltas of even UTC days only, part 1 the
    /// odd ones; the summaries are right (live) after each, and complete after both.
    @Test func eachFoldPartFoldsItsOwnDays() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let r = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: SampleRecords.ndjson(0..<2000))
            #expect(r.status == .ok)
        }
        func query(_ sql: String) async throws -> [Int64] {
            try await t.database.withDatabase { db in
                try await db.withConnection { conn in
                    var out: [Int64] = []
                    for try await v in try await conn.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).decode(Int64.self) { out.append(v) }
                    return out
                }
            }
        }
        // Days of the deltas left, as days since 1970 modulo 2.
        let parity = "SELECT DISTINCT ((extract(epoch FROM date_trunc('day', hour, 'UTC')) / 86400)::bigint % 2) FROM usage_delta ORDER BY 1"
        #expect(try await query(parity) == [0, 1])
        #expect(try await query("SELECT usage_fold_part(0)").first ?? 0 > 0)
        #expect(try await query(parity) == [1])
        #expect(try await mismatches(t, live: true).0 == 0)
        #expect(try await query("SELECT usage_fold_part(1)").first ?? 0 > 0)
        #expect(try await deltaRows(t) == 0)
        let (bad, rows) = try await mismatches(t, live: false)
        #expect(bad == 0 && rows > 20)
        // The hour keeper is told about every hour folded, from both parts.
        #expect(try await query("SELECT count(*) FROM (SELECT DISTINCT date_trunc('hour', started_at, 'UTC') FROM usage_records EXCEPT SELECT hour FROM hour_summaries_dirty) x") == [0])
    }

    /// Ingest writes the summary deltas itself (sql/0014): an INSERT that does not say it wrote
    /// them is refused, with what to do, and leaves nothing behind.
    @Test func anInsertWithoutItsDeltasIsRefused() async throws {
        let t = try await TestApp.make()
        let message = try await t.database.withDatabase { db in
            try await db.withConnection { conn -> String in
                do {
                    try await conn.query("""
                        INSERT INTO usage_records (tenant, request_id, model, accelerator, started_at, gpu_seconds, input_tokens, output_tokens)
                        VALUES ('acme', 'by-hand', 'm', 'H100', now(), 1, 1, 1)
                        """, logger: TestDatabase.logger)
                    return "accepted"
                } catch let error as PSQLError {
                    return (error.serverInfo?[.message] ?? "") + " / " + (error.serverInfo?[.hint] ?? "")
                }
            }
        }
        #expect(message.contains("without their summary deltas") && message.contains("set_config('gpuledger.deltas'"), "\(message)")
        let stored = try await t.database.withDatabase { db in try await UsageStore(database: db).count() }
        #expect(stored == 0)
    }

    /// Reports whose figures come from the summaries (hourly, daily, the fleet's daily).
    static let reports = ["/v1/costs?from=2026-10-01&to=2026-12-01&group_by=tenant,day",
                          "/v1/costs?from=2026-10-01T05:30:00Z&to=2026-11-20T07:00:00Z&group_by=model,accelerator",
                          "/v1/chargeback?period=2026-10", "/v1/stats?from=2026-10-01&to=2026-10-05&group_by=model"]
}
