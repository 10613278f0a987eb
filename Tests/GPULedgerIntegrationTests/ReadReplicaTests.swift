import Foundation
import GPULedgerHTTP
import GPULedgerTestSupport
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

/// `DATABASE_READ_URL`: reports and stats read through the replica's client and say so, with its
/// lag; a request can ask for the primary; ingest never goes there; and when the replica cannot be
/// reached the reads go to the primary and `/metrics` counts it. (A real streaming standby is
/// exercised by `scripts/ha-drill`; here the "replica" is a second client of the test database,
/// which, being no standby, has replayed nothing and lags by 0.)
@Suite struct ReadReplicaTests {
    static let costs = "/v1/costs?from=2026-10-01&to=2026-12-01&group_by=tenant"

    @Test func reportsSayTheyWereReadOnTheReplicaAndHowFarBehindItIs() async throws {
        let t = try await TestApp.make()
        try await t.application(readClient: t.database.makeClient()).test(.router) { client in
            let ingest = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: SampleRecords.ndjson(0..<50))
            #expect(ingest.status == .ok)
            #expect(ingest.headers[.gpuledgerReadFrom] == nil) // writes are the primary's, and say nothing
            let read = try await client.get(Self.costs, key: t.financeKey)
            #expect(read.status == .ok)
            #expect(read.headers[.gpuledgerReadFrom] == "replica")
            #expect(read.headers[.gpuledgerReplicaLag] == "0.000")
            #expect((read.json["total"] as? [String: Any])?["requests"] as? Int == 50)
            let stats = try await client.get("/v1/stats?from=2026-10-01&to=2026-12-01&group_by=model", key: t.financeKey)
            #expect(stats.headers[.gpuledgerReadFrom] == "replica")
            let fresh = try await client.get(Self.costs, key: t.financeKey, headers: [.gpuledgerConsistency: "primary"])
            #expect(fresh.headers[.gpuledgerReadFrom] == "primary" && fresh.body == read.body)
            let bad = try await client.get(Self.costs, key: t.financeKey, headers: [.gpuledgerConsistency: "eventual"])
            #expect(bad.status == .badRequest && bad.body.contains("X-GPULedger-Consistency takes primary or any"))
        }
    }

    @Test func aReplicaThatCannotBeReachedSendsTheReadsToThePrimary() async throws {
        // Skipped for longer than the test runs: "up 0" below must not depend on how fast the
        // reads are on a busy machine (with 5 s, a slow run saw the replica tried again already).
        let t = try await TestApp.make { $0.replicaAcquireTimeout = .seconds(1); $0.replicaRetryAfter = .seconds(600) }
        let away = PostgresClient(configuration: .init(host: "127.0.0.1", port: freePort(), username: "nobody", password: nil,
                                                       database: "nothing", tls: .disable), backgroundLogger: TestDatabase.logger)
        try await t.application(readClient: away).test(.router) { client in
            #expect(try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: SampleRecords.ndjson(0..<20)).status == .ok)
            for _ in 0..<2 {
                let read = try await client.get(Self.costs, key: t.financeKey)
                #expect(read.status == .ok)
                #expect(read.headers[.gpuledgerReadFrom] == "primary")
                #expect((read.json["total"] as? [String: Any])?["requests"] as? Int == 20)
            }
            let scrape = try await client.get("/metrics", key: nil).body
            #expect(scrape.contains("gpuledger_read_replica_up 0"))
            let fallbacks = scrape.split(separator: "\n").first { $0.hasPrefix("gpuledger_read_replica_fallbacks_total ") }
                .flatMap { Double($0.split(separator: " ").last!) } ?? 0
            #expect(fallbacks >= 2)
        }
    }
}
