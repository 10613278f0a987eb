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
        struct R: Sendable { var model: String; var ttft: Double?; var tpot: Double?; var e2e: Double; var error: Bool; var out: Int; var gs: Double
                            var queue: Double? = nil; var input = 0; var cached: Int? = nil }
        var rawValues: [R] = []
        var recordTexts: [String] = []
        for i in 0..<600 {
            let model = i % 3 == 0 ? "m-small" : "m-large"
            var r = R(model: model, ttft: i % 7 == 0 ? nil : Double(Int.random(in: 10_000...900_000, using: &rng)) / 1000,
                      tpot: i % 5 == 0 ? nil : Double(Int.random(in: 1_000...90_000, using: &rng)) / 1000,
                      e2e: Double(Int.random(in: 100_000...30_000_000, using: &rng)) / 1000, error: i % 11 == 0,
                      out: Int.random(in: 1...2000, using: &rng), gs: Double(Int.random(in: 1...5000, using: &rng)) / 100)
            // Queue time on most records; cached input tokens on some (the others do not say).
            if i % 4 != 0 { r.queue = Double(Int.random(in: 0...20_000_000, using: &rng)) / 1000 }
            r.input = Int.random(in: 1...8000, using: &rng)
            if i % 3 != 1 { r.cached = Int.random(in: 0...r.input, using: &rng) }
            rawValues.append(r)
            var o: [String: String?] = ["model": "\"\(model)\"", "e2e_ms": String(format: "%.3f", r.e2e), "output_tokens": "\(r.out)",
                                        "gpu_seconds": String(format: "%.2f", r.gs), "pool": "\"p\"",
                                        "started_at": "\"2026-11-02T\(String(format: "%02d", i % 24)):\(String(format: "%02d", i % 60)):00Z\""]
            if let v = r.ttft { o["ttft_ms"] = String(format: "%.3f", v) }
            if let v = r.tpot { o["tpot_ms"] = String(format: "%.3f", v) }
            if let v = r.queue { o["queue_ms"] = String(format: "%.3f", v) }
            o["input_tokens"] = "\(r.input)"
            if let v = r.cached { o["cached_input_tokens"] = "\(v)" }
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
                for (field, values) in [("ttft_ms", mine.compactMap(\.ttft)), ("tpot_ms", mine.compactMap(\.tpot)), ("e2e_ms", mine.map(\.e2e)),
                                        ("queue_ms", mine.compactMap(\.queue))] {
                    let p = row[field] as? [String: Double] ?? [:]
                    for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                        #expect(p[name] == nearestRank(values, q), "\(field) \(name)")
                    }
                }
                // The hit rate counts only the records that report cached input tokens.
                let reporting = mine.filter { $0.cached != nil }
                let hitRate = Double(reporting.reduce(0) { $0 + $1.cached! }) / Double(reporting.reduce(0) { $0 + $1.input })
                #expect(abs((row["cache_hit_rate"] as? Double ?? -1) - hitRate) < 1e-6)
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
        // In the test clock's current month, so that the monthly budget's spend holds them.
        let at = ["started_at": "\"\(TestClock.recent.rfc3339)\""]
        try await t.application().test(.router) { client in
            try await client.ingest((0..<5).map { record("m\($0)", tenant: "acme", at) }, key: t.ingestKey)
            // A resend of two and a new one; a batch with a bad record; a body that is not JSON.
            try await client.ingest(["m0", "m1", "m9"].map { record($0, tenant: "acme", at) }, key: t.ingestKey)
            #expect(try await client.post("/v1/usage", key: t.ingestKey, body: "[" + record("x1", ["gpu_seconds": "-1"]) + "," + record("x2") + "]").status == .unprocessableContent)
            #expect(try await client.post("/v1/usage", key: t.ingestKey, body: "{").status == .badRequest)
            #expect(try await client.put("/v1/budgets/tight", key: t.financeKey, body: #"{"tenant":"acme","period":"monthly","amount_usd":"0.01"}"#).status == .created)
            try await t.refreshGauges()
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
            // Cost at the card's 3.60 USD/h: 6 accepted records of 2.5 GPU-seconds each.
            let cost = sample(text, #"gpuledger_usage_cost_usd_total{tenant="acme",model="llama-3.1-70b",accelerator="H100"}"#)
            #expect(cost.map { abs($0 - 6 * 2.5 * 3.60 / 3600) < 1e-12 } == true, "\(String(describing: cost))")
            #expect(sample(text, #"gpuledger_usage_output_tokens_total{tenant="acme",model="llama-3.1-70b",accelerator="H100"}"#) == 1800.0)
            #expect(sample(text, "gpuledger_database_connections_in_use") == 0)

            // A deleted budget's gauges go at the next refresh.
            #expect(try await client.delete("/v1/budgets/tight", key: t.financeKey).status == .noContent)
            try await t.refreshGauges()
            #expect(!(try await client.get("/metrics", key: nil).body.contains(#"budget="tight""#)))
        }
    }

    /// The value of one series in a scrape.
    func sample(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
    }

    @Test func latencyHistogramsPoolGaugesAndUnpricedRecords() async throws {
        let dir = try pricingFolder(["cloud.csv": "acme-cloud,r1,H100,on_demand,3.60,2024-01-01,list\nacme-cloud,r1,H100,on_demand,2.40,2026-11-01T12:00:00Z,cut\n",
                                              "other.csv": "acme-cloud,r1,A100,on_demand,1.50,2026-12-01,later\n"],
                                    defaults: "H100,acme-cloud,r1,on_demand\n")
        let t = try await TestApp.make { $0.pricingDirectory = dir }
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/fixed", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"acme-cloud","region":"r1","tier":"on_demand","usd_per_gpu_hour":"1.00"}"#).status == .created)
            let lastHour = TestClock.hourStart(hoursAgo: 1)
            #expect(try await client.post("/v1/pools/fixed/capacity", key: t.adminKey, body: #"{"at":"2026-01-01T00:00:00Z","gpus":4}"#).status == .created)
            try await t.refreshGauges()
            try await client.ingest([
                // Before and after the 12:00 price cut, on no pool; then on the pool with its own price.
                record("a", ["started_at": "\"2026-11-01T11:00:00Z\"", "gpu_seconds": "3600", "ttft_ms": "120", "tpot_ms": "30", "e2e_ms": "9000",
                             "queue_ms": "40", "input_tokens": "1000", "cached_input_tokens": "600"]),
                record("b", ["started_at": "\"2026-11-01T12:00:00Z\"", "gpu_seconds": "3600", "ttft_ms": "4000", "e2e_ms": "90000", "queue_ms": "3000",
                             "input_tokens": "500"]),
                record("c", ["started_at": "\"\(lastHour.rfc3339)\"", "gpu_seconds": "7200", "pool": "\"fixed\"", "status": "\"error\"", "error_type": "\"oom\""]),
                // No rate covers an A100 yet (no default key, and its card starts in December).
                record("d", ["accelerator": "\"A100\"", "model": "\"qwen\""]),
            ], key: t.ingestKey)
            try await t.refreshGauges()
            let text = try await client.get("/metrics", key: nil).body
            let m = #"model="llama-3.1-70b""#
            #expect(sample(text, "gpuledger_llm_time_to_first_token_seconds_count{\(m)}") == 2)
            #expect(sample(text, "gpuledger_llm_time_to_first_token_seconds_sum{\(m)}") == 4.12)
            #expect(sample(text, #"gpuledger_llm_time_to_first_token_seconds_bucket{model="llama-3.1-70b",le="0.25"}"#) == 1)
            #expect(sample(text, #"gpuledger_llm_time_to_first_token_seconds_bucket{model="llama-3.1-70b",le="5.0"}"#) == 2)
            #expect(sample(text, "gpuledger_llm_time_per_output_token_seconds_count{\(m)}") == 1)
            #expect(sample(text, "gpuledger_llm_e2e_request_latency_seconds_sum{\(m)}") == 99)
            #expect(sample(text, "gpuledger_llm_queue_time_seconds_count{\(m)}") == 2)
            #expect(sample(text, #"gpuledger_llm_queue_time_seconds_bucket{model="llama-3.1-70b",le="0.05"}"#) == 1)
            #expect(sample(text, #"gpuledger_llm_queue_time_seconds_bucket{model="llama-3.1-70b",le="2.5"}"#) == 1)
            #expect(sample(text, "gpuledger_llm_queue_time_seconds_sum{\(m)}").map { abs($0 - 3.04) < 1e-9 } == true)
            let labels = #"{tenant="acme",model="llama-3.1-70b",accelerator="H100"}"#
            #expect(sample(text, "gpuledger_usage_errors_total\(labels)") == 1)
            #expect(sample(text, "gpuledger_usage_requests_total\(labels)") == 3)
            // Only "a" says how many input tokens were cached: 600 of its 1,000.
            #expect(sample(text, "gpuledger_usage_cached_input_tokens_total\(labels)") == 600)
            #expect(sample(text, "gpuledger_usage_cache_reported_input_tokens_total\(labels)") == 1000)
            // 1 h at 3.60 + 1 h at 2.40 + 2 h at the pool's 1.00 = 8.00; the A100 record is unpriced.
            #expect(sample(text, "gpuledger_usage_cost_usd_total\(labels)").map { abs($0 - 8) < 1e-9 } == true)
            #expect(sample(text, #"gpuledger_usage_cost_usd_total{tenant="acme",model="qwen",accelerator="A100"}"#) == 0)
            #expect(sample(text, #"gpuledger_usage_unpriced_records_total{accelerator="A100"}"#) == 1)
            // The pool: 4 GPUs, 2 busy in the last whole hour.
            #expect(sample(text, #"gpuledger_pool_provisioned_gpus{pool="fixed"}"#) == 4)
            #expect(sample(text, #"gpuledger_pool_busy_gpus{pool="fixed"}"#) == 2)
            #expect(sample(text, #"gpuledger_pool_utilization_ratio{pool="fixed"}"#) == 0.5)
        }
    }

    /// Every `gpuledger_…` series the Grafana dashboard and the alert rules query.
    static func seriesUsedByDeployFiles() throws -> (dashboard: Set<String>, alerts: Set<String>) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let names = try NSRegularExpression(pattern: "gpuledger_[a-z0-9_]+")
        func find(_ text: String) -> Set<String> {
            Set(names.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { String(text[Range($0.range, in: text)!]) })
        }
        let data = try Data(contentsOf: root.appendingPathComponent("deploy/grafana/gpuledger.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        // A datasource variable, and every panel and query on it.
        let variables = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        #expect(variables.contains { $0["type"] as? String == "datasource" && $0["name"] as? String == "datasource" })
        var exprs: [String] = []
        for panel in dashboard["panels"] as? [[String: Any]] ?? [] where panel["type"] as? String != "row" {
            #expect((panel["datasource"] as? [String: Any])?["uid"] as? String == "${datasource}", "\(panel["title"] ?? "")")
            for target in panel["targets"] as? [[String: Any]] ?? [] { exprs.append(target["expr"] as? String ?? "") }
        }
        #expect(exprs.count >= 15)
        let alerts = try String(contentsOf: root.appendingPathComponent("deploy/prometheus/alerts.yml"), encoding: .utf8)
        return (find(exprs.joined(separator: "\n")), find(alerts))
    }

    @Test func everySeriesTheDashboardAndAlertRulesQueryIsExported() async throws {
        let (dashboard, alerts) = try Self.seriesUsedByDeployFiles()
        #expect(dashboard.contains("gpuledger_usage_cost_usd_total") && dashboard.contains("gpuledger_pool_busy_gpus"))
        #expect(alerts.contains("gpuledger_budget_forecast_ratio") && alerts.contains("gpuledger_llm_time_to_first_token_seconds_bucket"))
        let dir = try pricingFolder(["cloud.csv": "acme-cloud,r1,H100,on_demand,3.60,2024-01-01,list\n"], defaults: "H100,acme-cloud,r1,on_demand\n")
        // With GPU hardware telemetry on (the pool's hardware series are in the alert rules too).
        try await HardwareTelemetryTests.fake.run { url in
        let t = try await TestApp.make { $0.pricingDirectory = dir; $0.prometheusURL = url }
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/p", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"acme-cloud","region":"r1","tier":"on_demand","gpu_selector":{"Hostname":"gpu-a-.*"}}"#).status == .created)
            #expect(try await client.post("/v1/pools/p/capacity", key: t.adminKey, body: #"{"at":"2026-01-01T00:00:00Z","gpus":2}"#).status == .created)
            #expect(try await client.put("/v1/budgets/b", key: t.financeKey, body: #"{"period":"monthly","amount_usd":"100"}"#).status == .created)
            try await client.ingest((0..<20).map { record("s\($0)", ["pool": "\"p\"", "ttft_ms": "200", "tpot_ms": "20", "e2e_ms": "5000"]) }, key: t.ingestKey)
            #expect(try await client.post("/v1/usage", key: t.ingestKey, body: "[" + record("bad", ["gpu_seconds": "-1"]) + "]").status == .unprocessableContent)
            try await t.refreshGauges()
            try await t.foldJob()
            let scrape = try await client.get("/metrics", key: nil).body
            let exported = Set(scrape.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
                String(line.prefix { $0 != "{" && $0 != " " })
            })
            #expect(dashboard.subtracting(exported).isEmpty, "the dashboard queries series /metrics lacks: \(dashboard.subtracting(exported).sorted())")
            #expect(alerts.subtracting(exported).isEmpty, "the alert rules query series /metrics lacks: \(alerts.subtracting(exported).sorted())")
        }
        }
    }

    @Test func openAPIIsServedAsInTheRepository() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = try String(contentsOf: root.appendingPathComponent("Sources/GPULedgerAPI/Resources/openapi.yaml"), encoding: .utf8)
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let answer = try await client.get("/openapi.yaml", key: nil)
            #expect(answer.status == .ok)
            #expect(answer.headers[.contentType] == "application/yaml; charset=utf-8")
            #expect(answer.body == file)
            #expect(file.hasPrefix("openapi: 3.1.0\n"))
            // Every route the router has is described.
            for path in ["/v1/usage:", "/v1/traces:", "/v1/periods:", "/v1/periods/{period}/close:", "/v1/pools/{pool}/token-weights:", "/v1/usage/{tenant}/{request_id}:", "/v1/costs:", "/v1/chargeback:", "/v1/stats:", "/v1/rates:",
                         "/v1/rates/reload:", "/v1/pools:", "/v1/pools/{pool}:", "/v1/pools/{pool}/capacity:", "/v1/budgets:",
                         "/v1/budgets/{name}:", "/v1/budgets/{name}/status:", "/v1/forecast/spend:", "/v1/forecast/capacity:",
                         "/healthz:", "/readyz:", "/metrics:", "/openapi.yaml:"] {
                #expect(file.contains("\n  \(path)\n"), "\(path)")
            }
        }
    }

    /// A known path with a method it does not take: 405 with Allow; an unknown path: 404.
    @Test func undeclaredMethodsAre405WithAllow() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            for (method, path, allow) in [(HTTPRequest.Method.delete, "/v1/usage", "POST"), (.put, "/healthz", "GET"),
                                          (.post, "/v1/budgets/b1", "DELETE, GET, PUT"), (.patch, "/v1/usage/acme/r1", "GET")] {
                let answer = try await client.execute(uri: path, method: method, headers: [.authorization: "Bearer \(t.adminKey)"]) { r in
                    Answer(status: r.status, headers: r.headers, body: String(buffer: r.body))
                }
                #expect(answer.status == .methodNotAllowed, "\(method) \(path): \(answer.status)")
                #expect(answer.headers[.allow] == allow, "\(method) \(path)")
                #expect(answer.errorCode == "method_not_allowed")
            }
            #expect(try await client.get("/v1/nothing-here", key: t.adminKey).status == .notFound)
            #expect(try await client.get("/v1/usage/acme/r1/extra", key: t.adminKey).status == .notFound)
        }
    }

    /// PostgreSQL cannot store U+0000 in text: a client sending it gets a 400, never a 500
    /// (schemathesis found this on a pool's fields).
    @Test func textWithANULCharacterIsA400() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let pool = try await client.put("/v1/pools/p", key: t.adminKey,
                                            body: #"{"accelerator":"H100","provider":"a\u0000b","region":"r","tier":"on_demand"}"#)
            #expect(pool.status == .badRequest, "\(pool.body)")
            #expect((pool.json["error"] as? [String: Any])?["code"] as? String == "bad_text")
            #expect(try await client.get("/v1/costs?tenant=a%00b", key: t.adminKey).status == .badRequest)
            // In a gpu_selector's expression (stored as jsonb, which refuses it): said per label.
            let selector = try await client.put("/v1/pools/p", key: t.adminKey,
                                                body: #"{"accelerator":"H100","provider":"a","region":"r","tier":"reserved","gpu_selector":{"qjl":"\u0091\u0000"}}"#)
            #expect(selector.status == .unprocessableContent, "\(selector.body)")
            #expect(selector.body.contains("gpu_selector.qjl"))
            #expect(try await client.get("/v1/pools/p", key: t.adminKey).status == .notFound)
        }
    }

    @Test func latencyHistogramsAreValidExpositionText() {
        let metrics = AppMetrics()
        let odd = "llama \"q4\" \\ v2"
        metrics.usage([0.004, 0.5, 31.0].map { v in
            UsageRecord(requestID: "r", tenant: "a", model: odd, accelerator: "H100", startedAt: Timestamp(microseconds: 0),
                        gpuSeconds: "1", inputTokens: 1, outputTokens: 1, ttftMs: v * 1000)
        })
        let text = String(decoding: metrics.render(), as: UTF8.self)
        let name = "gpuledger_llm_time_to_first_token_seconds"
        #expect(text.components(separatedBy: "# TYPE \(name) histogram\n").count == 2)
        let label = #"model="llama \"q4\" \\ v2""#
        // Cumulative buckets: 0.004 ≤ 0.01; 0.5 ≤ 0.5; 31 only in +Inf.
        #expect(text.contains("\(name)_bucket{\(label),le=\"0.01\"} 1\n"), "\(text)")
        #expect(text.contains("\(name)_bucket{\(label),le=\"0.5\"} 2\n"))
        #expect(text.contains("\(name)_bucket{\(label),le=\"30.0\"} 2\n"))
        #expect(text.contains("\(name)_bucket{\(label),le=\"+Inf\"} 3\n"))
        #expect(text.contains("\(name)_count{\(label)} 3\n"))
        #expect(text.contains("gpuledger_llm_e2e_request_latency_seconds_count{\(label)} 0\n"))
    }

    @Test func usageCountersAreValidExpositionTextSummedOverBatches() {
        let metrics = AppMetrics()
        let odd = "team \"x\"\\y"
        func record(_ tenant: String, _ gpuSeconds: String, cached: Int64? = nil, status: UsageRecord.Status = .ok) -> UsageRecord {
            UsageRecord(requestID: "r", tenant: tenant, model: "m", accelerator: "H100", startedAt: Timestamp(microseconds: 0),
                        gpuSeconds: gpuSeconds, inputTokens: 10, outputTokens: 3, cachedInputTokens: cached, status: status)
        }
        #expect(!String(decoding: metrics.render(), as: UTF8.self).contains("gpuledger_usage_requests_total"))
        metrics.usage([record("b", "1.5"), record(odd, "2", cached: 4)])
        metrics.usage([record("b", "0.25", status: .error)])
        let text = String(decoding: metrics.render(), as: UTF8.self)
        let b = #"{tenant="b",model="m",accelerator="H100"}"#
        let o = #"{tenant="team \"x\"\\y",model="m",accelerator="H100"}"#
        for name in ["gpuledger_usage_gpu_seconds_total", "gpuledger_usage_requests_total", "gpuledger_usage_errors_total",
                     "gpuledger_usage_input_tokens_total", "gpuledger_usage_output_tokens_total", "gpuledger_usage_cost_usd_total",
                     "gpuledger_usage_cached_input_tokens_total", "gpuledger_usage_cache_reported_input_tokens_total"] {
            #expect(text.components(separatedBy: "# TYPE \(name) counter\n").count == 2, "\(name)")
            #expect(text.components(separatedBy: "# HELP \(name) ").count == 2, "\(name)")
        }
        // Label sets in order (sorted), each metric's samples right after its TYPE line.
        #expect(text.contains("# TYPE gpuledger_usage_requests_total counter\ngpuledger_usage_requests_total\(b) 2\ngpuledger_usage_requests_total\(o) 1\n"), "\(text)")
        #expect(text.contains("gpuledger_usage_gpu_seconds_total\(b) 1.75\n"))
        #expect(text.contains("gpuledger_usage_gpu_seconds_total\(o) 2.0\n"))
        #expect(text.contains("gpuledger_usage_errors_total\(b) 1\n"))
        #expect(text.contains("gpuledger_usage_errors_total\(o) 0\n"))
        #expect(text.contains("gpuledger_usage_input_tokens_total\(b) 20\n"))
        #expect(text.contains("gpuledger_usage_output_tokens_total\(b) 6\n"))
        #expect(text.contains("gpuledger_usage_cached_input_tokens_total\(o) 4\n"))
        #expect(text.contains("gpuledger_usage_cache_reported_input_tokens_total\(o) 10\n"))
        #expect(text.contains("gpuledger_usage_cache_reported_input_tokens_total\(b) 0\n"))
        // No price book: nothing priced, the cost counters at 0, the records counted unpriced.
        #expect(text.contains("gpuledger_usage_cost_usd_total\(b) 0\n"))
        #expect(text.contains(#"gpuledger_usage_unpriced_records_total{accelerator="H100"} 3"#))
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

/// GPU hardware telemetry (`--prometheus-url`) on the ledger's side: the stats rows' `hardware`
/// object and the pools' hardware gauges, against a stand-in Prometheus (scripts/dcgm-test runs
/// the real one).
@Suite struct HardwareTelemetryTests {
    /// Pool "p": 2 GPUs at $2.00 an hour; its hardware busy 0.25 and 0.75 (1 GPU on average).
    static let fake = FakePrometheus(gpus: [
        .init(host: "gpu-a-1", index: 0, active: 0.25, used: 60_000, free: 21_920, power: 300, temp: 60),
        .init(host: "gpu-a-1", index: 1, active: 0.75, used: 80_000, free: 1_920, power: 500, temp: 70),
        .init(host: "gpu-z-9", index: 0, active: 1, used: 1, free: 0, power: 900, temp: 99), // another pool's
    ])

    @Test func statsAndGaugesPutTheHardwareNextToTheLedger() async throws {
        try await Self.fake.run { url in
            let t = try await TestApp.make { $0.prometheusURL = url }
            try await t.application().test(.router) { client in
                #expect(try await client.put("/v1/pools/p", key: t.adminKey, body: #"""
                    {"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand","usd_per_gpu_hour":"2.00","gpu_selector":{"Hostname":"gpu-a-.*"}}
                    """#).status == .created)
                #expect(try await client.put("/v1/pools/q", key: t.adminKey,
                                             body: #"{"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand"}"#).status == .created)
                for pool in ["p", "q"] {
                    #expect(try await client.post("/v1/pools/\(pool)/capacity", key: t.adminKey, body: #"{"at":"2026-01-01T00:00:00Z","gpus":2}"#).status == .created)
                }
                let hour = TestClock.hourStart(hoursAgo: 1)
                try await client.ingest([record("a", ["pool": "\"p\"", "started_at": "\"\(hour.rfc3339)\"", "gpu_seconds": "1800"]),
                                         record("b", ["pool": "\"q\"", "started_at": "\"\(hour.rfc3339)\"", "gpu_seconds": "60"])], key: t.ingestKey)
                let stats = try await client.get("/v1/stats?from=\(hour.rfc3339)&to=\(hour.adding(hours: 1).rfc3339)&group_by=pool", key: t.financeKey)
                let rows = stats.json["rows"] as? [[String: Any]] ?? []
                let p = try #require(rows.first { $0["pool"] as? String == "p" })
                let hw = try #require(p["hardware"] as? [String: Any])
                #expect(hw["utilization"] as? Double == 0.5 && hw["gpus"] as? Int == 2)
                #expect(hw["memory_used_ratio_max"] as? Double == 0.976563 && hw["temperature_c_max"] as? Double == 70 && hw["power_watts_mean"] as? Double == 400)
                // Paid 2 GPU-hours ($4.00); records 0.5; hardware busy 1: half the bill paid idle hardware.
                #expect(hw["paid_gpu_hours"] as? Double == 2 && hw["ledger_gpu_hours"] as? Double == 0.5 && hw["busy_gpu_hours"] as? Double == 1)
                #expect(hw["idle_allocated_cost_usd"] as? String == "2.00")
                #expect(p["hardware_note"] is NSNull)
                let q = try #require(rows.first { $0["pool"] as? String == "q" })
                #expect(q["hardware"] is NSNull && (q["hardware_note"] as? String)?.contains("no gpu_selector") == true)
                // The total row is no pool's: no hardware keys.
                #expect((stats.json["total"] as? [String: Any])?["hardware"] == nil)

                try await t.refreshGauges()
                let text = try await client.get("/metrics", key: nil).body
                func sample(_ s: String) -> Double? {
                    text.split(separator: "\n").first { $0.hasPrefix(s + " ") }.flatMap { Double($0.split(separator: " ").last!) }
                }
                #expect(sample(#"gpuledger_pool_hardware_utilization_ratio{pool="p"}"#) == 0.5)
                #expect(sample(#"gpuledger_pool_hardware_busy_gpus{pool="p"}"#) == 1)
                #expect(sample(#"gpuledger_pool_hardware_idle_allocated_cost_usd{pool="p"}"#) == 2)
                #expect(sample(#"gpuledger_pool_utilization_ratio{pool="p"}"#) == 0.25)
                #expect(sample(#"gpuledger_pool_hardware_utilization_ratio{pool="q"}"#) == nil)

                // The chargeback's fleet block: each pool the month paid for, over the month so far.
                let period = Period.containing(TestClock.now)
                let bill = try await client.get("/v1/chargeback?period=\(period)", key: t.financeKey)
                let pools = ((bill.json["fleet"] as? [String: Any])?["hardware"] as? [[String: Any]]) ?? []
                #expect(pools.compactMap { $0["pool"] as? String } == ["p", "q"], "\(bill.body.prefix(600))")
                let hours = Double(TestClock.now.microseconds - period.start.microseconds) / 3.6e9
                let bp = pools.first ?? [:]
                #expect(abs((bp["paid_gpu_hours"] as? Double ?? -1) - 2 * hours) < 1e-5 && abs((bp["busy_gpu_hours"] as? Double ?? -1) - hours) < 1e-5)
                #expect(bp["utilization"] as? Double == 0.5 && bp["gpus"] as? Int == 2)
                // At $2.00 a GPU-hour the idle half of 2 GPUs costs as many dollars as the hours.
                #expect(abs((Double(bp["idle_allocated_cost_usd"] as? String ?? "") ?? -1) - 2 * hours) <= 0.005)
                #expect(bp["ledger_gpu_hours"] as? Double == (hour.microseconds >= period.start.microseconds ? 0.5 : 0))
                #expect(pools.last?["busy_gpu_hours"] is NSNull && (pools.last?["note"] as? String)?.contains("no gpu_selector") == true)
                // A tenant key's answer has no fleet block, so none of this.
                #expect((try await client.get("/v1/chargeback?period=\(period)", key: t.acmeTenantKey).json["fleet"]) == nil)

                // The console's Capacity page: the last 24 hours (up to now) side by side. p's
                // GPUs were busy 1 of its 2 all along: half its paid GPU-hours busy, and at $2.00
                // a GPU-hour the idle half costs as many dollars as it paid GPU-hours.
                let console = ConsoleTests()
                let session = try await console.signIn(client, key: t.financeKey)
                let page = try await console.page(client, "/capacity", session: session)
                #expect(page.status == .ok)
                let section = String(page.body[(page.body.range(of: "id=\"hardware-table\"")?.lowerBound ?? page.body.endIndex)...])
                let row = try #require(section.range(of: "<tr><td>p</td>").map { String(section[$0.lowerBound...].prefix { $0 != "\n" }) })
                let cells = row.components(separatedBy: "</td>").map { $0.replacingOccurrences(of: #"<[^>]+>"#, with: "", options: .regularExpression) }
                #expect(cells.prefix(6) == ["p", "2", cells[2], "0.50", cells[4], "50.0%"], "\(cells)")
                let (paid, busy) = (Double(cells[2]) ?? 0, Double(cells[4]) ?? 0)
                #expect(paid >= 45.99 && paid <= 48 && abs(paid - 2 * busy) < 0.011, "\(cells)")
                let idle = row.range(of: #"value="[0-9.]+""#, options: .regularExpression).map { Double(row[$0].dropFirst(7).dropLast()) ?? 0 } ?? 0
                #expect(abs(idle - paid) < 0.006, "\(row)")
                #expect(section.contains("has no gpu_selector"))
            }
        }
    }
}
