import Foundation
import GPULedgerAPI
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import HummingbirdTesting
import PostgresNIO
import Testing

/// The hourly rollup stays equal to the raw records through ingest, resends, partial
/// duplicates and deletes, and a report reflects a batch as soon as its ingest is acknowledged.
@Suite struct RollupTests {
    static let mismatch = """
        WITH raw AS (
            SELECT date_trunc('hour', started_at, 'UTC') AS hour, tenant, model, accelerator, coalesce(pool, '') AS pool,
                   count(*) AS requests, count(*) FILTER (WHERE status = 'error') AS errors, sum(gpu_seconds) AS gpu_seconds,
                   sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
            FROM usage_records GROUP BY 1, 2, 3, 4, 5
        ), rolled AS (SELECT hour, tenant, model, accelerator, pool, requests, errors, gpu_seconds, input_tokens, output_tokens FROM usage_hourly)
        SELECT (SELECT count(*) FROM (SELECT * FROM raw EXCEPT SELECT * FROM rolled) a) + (SELECT count(*) FROM (SELECT * FROM rolled EXCEPT SELECT * FROM raw) b),
               (SELECT count(*) FROM rolled)
        """

    func mismatches(_ t: TestApp) async throws -> (Int64, Int64) {
        try await t.database.withDatabase { db in
            try await db.withConnection { conn in
                for try await pair in try await conn.query(PostgresQuery(unsafeSQL: Self.mismatch), logger: TestDatabase.logger).decode((Int64, Int64).self) {
                    return pair
                }
                return (-1, -1)
            }
        }
    }

    @Test func theRollupEqualsTheRawRecordsThroughResendsAndDeletes() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let first = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: SampleRecords.ndjson(0..<3000))
            #expect(first.status == .ok)
            // A resend of half of it with new records: the staging path, only new rows added.
            let second = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: SampleRecords.ndjson(1500..<4000))
            #expect(second.json["accepted"] as? Int == 1000)
            #expect(second.json["duplicates"] as? Int == 1500)
            let total = try await client.get("/v1/costs?from=2026-01-01&to=2027-01-01", key: t.financeKey).json["total"] as? [String: Any]
            #expect(total?["requests"] as? Int == 4000)
        }
        let (bad, rows) = try await mismatches(t)
        #expect(bad == 0)
        #expect(rows > 100)
        // Deleting (the retention job) takes the records out of the rollup too.
        let cutoff = Timestamp.parseRFC3339("2026-10-15T00:00:00Z")!
        let deleted = try await t.database.withDatabase { db in try await UsageStore(database: db).deleteBatch(startedBefore: cutoff, limit: 700) }
        #expect(deleted == 700)
        #expect(try await mismatches(t).0 == 0)
    }
}
