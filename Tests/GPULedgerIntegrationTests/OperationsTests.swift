import Foundation
@testable import GPULedgerAPI
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// `/v1/stats` and `/metrics`.
@Suite struct OperationsTests {
    /// Nearest rank: the smallest value with at least p of the values at or below it.
    func nearestRank(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted[max(Int((p * Double(sorted.count)).rounded(.up)) - 1, 0)]
    }

    @Test func statsPercentilesEqualASortOfTheRawValues() async throws {
        let t = try await TestApp.make()
        var rng = SplitMix(seed: 7)
        struct R: Sendable { var model: String; var ttft: Double?; var tpot: Double?; var e2e: Double; var error: Bool; var out: Int; var gs: Double }
        var rawValues: [R] = []
        var recordTexts: [String] = []
        for i in 0..<600 {
            let model = i % 3 == 0 ? "m-small" : "m-large"
            let r = R(model: model, ttft: i % 7 == 0 ? nil : Double(Int.random(in: 10_000...900_000, using: &rng)) / 1000,
                      tpot: i % 5 == 0 ? nil : Double(Int.random(in: 1_000...90_000, using: &rng)) / 1000,
                      e2e: Double(Int.random(in: 100_000...30_000_000, using: &rng)) / 1000, error: i % 11 == 0,
                      out: Int.random(in: 1...2000, using: &rng), gs: Double(Int.random(in: 1...5000, using: &rng)) / 100)
            rawValues.append(r)
            var o: [String: String?] = ["model": "\"\(model)\"", "e2e_ms": String(format: "%.3f", r.e2e), "output_tokens": "\(r.out)",
                                        "gpu_seconds": String(format: "%.2f", r.gs), "pool": "\"p\"",
                                        "started_at": "\"2026-11-02T\(String(format: "%02d", i % 24)):\(String(format: "%02d", i % 60)):00Z\""]
            if let v = r.ttft { o["ttft_ms"] = String(format: "%.3f", v) }
            if let v = r.tpot { o["tpot_ms"] = String(format: "%.3f", v) }
            if r.error { o["status"] = "\"error\""; o["error_type"] = "\"timeout\"" }
            recordTexts.append(record("s\(i)", o))
        }
        let (raw, records) = (rawValues, recordTexts)
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/p", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand"}"#).status == .created)
            #expect(try await client.post("/v1/pools/p/capacity", key: t.adminKey, body: #"{"at":"2026-11-01T00:00:00Z","gpus":2}"#).status == .created)
            try await client.ingest(records, key: t.adminKey)
            let a = try await client.get("/v1/stats?from=2026-11-02&to=2026-11-03&group_by=model", key: t.financeKey)
            #expect(a.status == .ok, "\(a.body)")
            let rows = a.json["rows"] as? [[String: Any]] ?? []
            #expect(rows.compactMap { $0["model"] as? String } == ["m-large", "m-small"])
            for row in rows {
                let mine = raw.filter { $0.model == row["model"] as? String }
                #expect(row["requests"] as? Int == mine.count)
                #expect(row["errors"] as? Int == mine.filter(\.error).count)
                for (field, values) in [("ttft_ms", mine.compactMap(\.ttft)), ("tpot_ms", mine.compactMap(\.tpot)), ("e2e_ms", mine.map(\.e2e))] {
                    let p = row[field] as? [String: Double] ?? [:]
                    for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                        #expect(p[name] == nearestRank(values, q), "\(field) \(name)")
                    }
                }
                let day = 86_400.0
                #expect(abs((row["output_tokens_per_second"] as? Double ?? 0) - Double(mine.reduce(0) { $0 + $1.out }) / day) < 1e-6)
                #expect(abs((row["busy_gpus"] as? Double ?? 0) - mine.reduce(0) { $0 + $1.gs } / day) < 1e-6)
            }
            // One pool, grouped by pool: used over provisioned (2 GPUs all day).
            let pools = try await client.get("/v1/stats?from=2026-11-02&to=2026-11-03&group_by=pool", key: t.financeKey)
            let used = raw.reduce(0) { $0 + $1.gs }
            let utilization = (pools.json["rows"] as? [[String: Any]])?.first?["utilization"] as? Double ?? -1
            #expect(abs(utilization - used / (2 * 86_400)) < 1e-6)
            // Hourly rows have hour-long windows.
            let hourly = try await client.get("/v1/stats?from=2026-11-02&to=2026-11-03&group_by=hour", key: t.financeKey)
            let first = (hourly.json["rows"] as? [[String: Any]])?.first ?? [:]
            #expect(first["hour"] as? String == "2026-11-02T00:00:00Z" && first["window_seconds"] as? Double == 3600)

            // Isolation and bad queries.
            #expect(try await client.get("/v1/stats?tenant=globex", key: t.acmeTenantKey).status == .forbidden)
            #expect(try await client.get("/v1/stats", key: t.acmeTenantKey).status == .ok)
            #expect(try await client.get("/v1/stats", key: t.ingestKey).status == .forbidden)
            #expect(try await client.get("/v1/stats?group_by=color", key: t.financeKey).status == .badRequest)
            #expect(try await client.get("/v1/stats?from=tomorrow", key: t.financeKey).status == .badRequest)
        }
    }

    @Test func metricsCountIngestRequestsAndBudgets() async throws {
        let dir = try pricingFolder(["cloud.csv": "acme-cloud,r1,H100,on_demand,3.60,2024-01-01,list\n"], defaults: "H100,acme-cloud,r1,on_demand\n")
        let t = try await TestApp.make { $0.pricingDirectory = dir }
        try await t.application().test(.router) { client in
            try await client.ingest((0..<5).map { record("m\($0)", tenant: "acme") }, key: t.ingestKey)
            // A resend of two and a new one; a batch with a bad record; a body that is not JSON.
            try await client.ingest(["m0", "m1", "m9"].map { record($0, tenant: "acme") }, key: t.ingestKey)
            #expect(try await client.post("/v1/usage", key: t.ingestKey, body: "[" + record("x1", ["gpu_seconds": "-1"]) + "," + record("x2") + "]").status == .unprocessableContent)
            #expect(try await client.post("/v1/usage", key: t.ingestKey, body: "{").status == .badRequest)
            #expect(try await client.put("/v1/budgets/tight", key: t.financeKey, body: #"{"tenant":"acme","period":"monthly","amount_usd":"0.01"}"#).status == .created)
            try await t.database.withDatabase { db in
                try await BudgetGaugeService(database: db, metrics: t.metrics, interval: .seconds(60), logger: TestDatabase.logger).refresh()
            }
            let scrape = try await client.get("/metrics", key: nil)
            #expect(scrape.status == .ok)
            #expect(scrape.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = scrape.body
            #expect(text.contains(#"gpuledger_ingest_records_total{outcome="accepted"} 6"#), "\(text)")
            #expect(text.contains(#"gpuledger_ingest_records_total{outcome="duplicate"} 2"#))
            #expect(text.contains(#"gpuledger_ingest_rejected_records_total{reason="invalid"} 2"#))
            #expect(text.contains(#"gpuledger_ingest_rejected_records_total{reason="malformed"} 1"#))
            #expect(text.contains(#"gpuledger_usage_requests_total{tenant="acme",model="llama-3.1-70b",accelerator="H100"} 6"#))
            #expect(text.contains(#"gpuledger_http_request_duration_seconds_count{route="/v1/usage",method="POST",status_class="2xx"} 2"#))
            #expect(text.contains(#"gpuledger_budget_state{budget="tight",state="exceeded"} 1.0"#))
            #expect(text.contains(#"gpuledger_budget_state{budget="tight",state="ok"} 0.0"#))
            #expect(text.contains(#"gpuledger_budget_amount_usd{budget="tight"} 0.01"#))

            // A deleted budget's gauges go at the next refresh.
            #expect(try await client.delete("/v1/budgets/tight", key: t.financeKey).status == .noContent)
            try await t.database.withDatabase { db in
                try await BudgetGaugeService(database: db, metrics: t.metrics, interval: .seconds(60), logger: TestDatabase.logger).refresh()
            }
            #expect(!(try await client.get("/metrics", key: nil).body.contains(#"budget="tight""#)))
        }
    }

    @Test func labelValuesPastTheCapCountAsOther() {
        let metrics = AppMetrics(labelCap: 2)
        let records = ["a", "b", "c", "d"].map { UsageRecord(requestID: "r", tenant: $0, model: "m", accelerator: "H100", startedAt: Timestamp(microseconds: 0),
                                                             gpuSeconds: "1", inputTokens: 1, outputTokens: 1) }
        metrics.usage(records)
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains(#"gpuledger_usage_requests_total{tenant="a",model="m",accelerator="H100"} 1"#))
        #expect(text.contains(#"gpuledger_usage_requests_total{tenant="b",model="m",accelerator="H100"} 1"#))
        #expect(text.contains(#"gpuledger_usage_requests_total{tenant="other",model="m",accelerator="H100"} 2"#))
        #expect(!text.contains(#"tenant="c""#))
    }
}
