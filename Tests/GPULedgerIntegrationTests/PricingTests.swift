import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Rate cards in the rate history, and a request priced at the rate in force when it started.
@Suite struct PricingTests {
    let header = "provider,region,accelerator,tier,usd_per_gpu_hour,effective_from,source\n"

    func pricingDir(_ files: [String: String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpl-pricing-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
        return dir
    }

    var defaults: String { "accelerator,provider,region,tier\nH100,acme-cloud,r1,on_demand\n" }

    @Test func aRequestIsPricedAtTheRateInForceWhenItStarted() async throws {
        let dir = try pricingDir([
            "cloud.csv": header + "acme-cloud,r1,H100,on_demand,3.60,2026-11-01T12:00:00Z,new price\nacme-cloud,r1,H100,on_demand,7.20,2026-10-01,old price\n",
            "defaults.csv": defaults,
        ])
        let t = try await TestApp.make { $0.pricingDirectory = dir }
        try await t.application().test(.router) { client in
            let at = record("at", ["started_at": "\"2026-11-01T12:00:00Z\"", "gpu_seconds": "3600", "input_tokens": "600000", "output_tokens": "400000"])
            let before = record("before", ["started_at": "\"2026-11-01T11:59:59.999999Z\"", "gpu_seconds": "3600"])
            let early = record("early", ["started_at": "\"2026-09-30T23:59:59Z\"", "gpu_seconds": "10"])
            #expect(try await client.post("/v1/usage", key: t.ingestKey, body: "[\(at),\(before),\(early)]").status == .ok)
            let a = try await client.get("/v1/usage/acme/at", key: t.adminKey).json
            #expect(a["cost_usd"] as? String == "3.600000000000")
            #expect(a["cost_per_1m_tokens_usd"] as? String == "3.600000000000")
            let rate = a["rate"] as? [String: Any]
            #expect(rate?["usd_per_gpu_hour"] as? String == "3.60")
            #expect(rate?["effective_from"] as? String == "2026-11-01T12:00:00Z")
            #expect((rate?["source"] as? String)?.hasSuffix("cloud.csv") == true)
            let b = try await client.get("/v1/usage/acme/before", key: t.adminKey).json
            #expect(b["cost_usd"] as? String == "7.200000000000")
            // Before the first rate: kept, but no rate applies.
            let e = try await client.get("/v1/usage/acme/early", key: t.adminKey).json
            #expect(e["cost_usd"] is NSNull)
            #expect(e["rate"] is NSNull)
            // The reports price the same way: the hour before the change at the old rate.
            let hours = try await client.get("/v1/costs?from=2026-09-30T23:00:00Z&to=2026-11-01T13:00:00Z&group_by=hour", key: t.financeKey).json
            let rows = (hours["rows"] as? [[String: Any]] ?? []).map {
                "\($0["hour"] as? String ?? "") \($0["cost_usd"] as? String ?? "") \($0["unpriced_gpu_seconds"] ?? "")"
            }
            #expect(rows == ["2026-09-30T23:00:00Z 0.000000000000 10", "2026-11-01T11:00:00Z 7.200000000000 0",
                             "2026-11-01T12:00:00Z 3.600000000000 0"])
        }
    }

    @Test func anEarlierRateAddedLaterRepricesPastUsage() async throws {
        let dir = try pricingDir(["cloud.csv": header + "acme-cloud,r1,H100,on_demand,3.60,2026-11-01,x\n", "defaults.csv": defaults])
        let t = try await TestApp.make { $0.pricingDirectory = dir }
        try await t.application().test(.router) { client in
            _ = try await client.post("/v1/usage", key: t.ingestKey, body: record("oct", ["started_at": "\"2026-10-15T00:00:00Z\"", "gpu_seconds": "7200"]))
            #expect(try await client.get("/v1/usage/acme/oct", key: t.adminKey).json["cost_usd"] is NSNull)
            func octoberTotal() async throws -> String {
                let total = try await client.get("/v1/costs?from=2026-10-01&to=2026-11-01", key: t.financeKey).json["total"] as? [String: Any]
                return "\(total?["cost_usd"] as? String ?? "") \(total?["unpriced_gpu_seconds"] ?? "")"
            }
            #expect(try await octoberTotal() == "0.000000000000 7200")
            try (header + "acme-cloud,r1,H100,on_demand,3.60,2026-11-01,x\nacme-cloud,r1,H100,on_demand,1.80,2026-10-01,backfilled\n")
                .write(toFile: dir + "/cloud.csv", atomically: true, encoding: .utf8)
            let reload = try await client.post("/v1/rates/reload", key: t.adminKey, contentType: nil, body: "")
            #expect(reload.status == .ok)
            #expect(reload.json["added"] as? Int == 1)
            #expect(try await client.get("/v1/usage/acme/oct", key: t.adminKey).json["cost_usd"] as? String == "3.600000000000")
            #expect(try await octoberTotal() == "3.600000000000 0")
            // A corrected price is logged and applies to the usage it covers.
            try (header + "acme-cloud,r1,H100,on_demand,3.60,2026-11-01,x\nacme-cloud,r1,H100,on_demand,0.90,2026-10-01,corrected\n")
                .write(toFile: dir + "/cloud.csv", atomically: true, encoding: .utf8)
            #expect(try await client.post("/v1/rates/reload", key: t.adminKey, contentType: nil, body: "").json["changed"] as? Int == 1)
            #expect(try await client.get("/v1/usage/acme/oct", key: t.adminKey).json["cost_usd"] as? String == "1.800000000000")
            #expect(try await octoberTotal() == "1.800000000000 0")
        }
        let changes = try await t.database.withDatabase { db in
            try await db.withConnection { conn in
                var out: [String] = []
                for try await (c, old, new) in try await conn.query("SELECT change, old_usd_per_gpu_hour::text, new_usd_per_gpu_hour::text FROM rate_changes WHERE effective_from < '2026-11-01' ORDER BY id", logger: TestDatabase.logger).decode((String, String?, String?).self) {
                    out.append("\(c) \(old ?? "-") \(new ?? "-")")
                }
                return out
            }
        }
        #expect(changes == ["added - 1.80", "changed 1.80 0.90"])
    }

    @Test func aBadRateFileIsRefusedWithItsLineAndColumnAndChangesNothing() async throws {
        let dir = try pricingDir(["cloud.csv": header + "acme-cloud,r1,H100,on_demand,3.60,2026-11-01,x\n", "defaults.csv": defaults])
        let t = try await TestApp.make { $0.pricingDirectory = dir }
        try await t.application().test(.router) { client in
            _ = try await client.post("/v1/usage", key: t.ingestKey, body: record("nov", ["started_at": "\"2026-11-15T00:00:00Z\"", "gpu_seconds": "3600"]))
            try (header + "acme-cloud,r1,H100,on_demand,9.99,2026-11-01,x\nacme-cloud,r1,L4,spot,cheap,2026-11-01,y\n")
                .write(toFile: dir + "/cloud.csv", atomically: true, encoding: .utf8)
            let reload = try await client.post("/v1/rates/reload", key: t.adminKey, contentType: nil, body: "")
            #expect(reload.status == .unprocessableContent)
            #expect(reload.errorCode == "invalid_rate_cards")
            #expect((reload.details.first?["field"] as? String)?.hasSuffix("cloud.csv:3:5") == true)
            let rates = try await client.get("/v1/rates?at=2026-11-15", key: t.acmeTenantKey)
            #expect(rates.status == .ok)
            let list = rates.json["rates"] as? [[String: Any]] ?? []
            #expect(list.map { $0["usd_per_gpu_hour"] as? String } == ["3.60"])
            let total = try await client.get("/v1/costs?from=2026-11-01&to=2026-12-01", key: t.financeKey).json["total"] as? [String: Any]
            #expect(total?["cost_usd"] as? String == "3.600000000000")
            #expect(try await client.post("/v1/rates/reload", key: t.financeKey, contentType: nil, body: "").status == .forbidden)
        }
    }

    @Test func ratesInForceAtATime() async throws {
        let dir = try pricingDir([
            "cloud.csv": header + "acme-cloud,r1,H100,on_demand,7.20,2026-10-01,old\nacme-cloud,r1,H100,on_demand,3.60,2026-11-01,new\nacme-cloud,r1,H100,spot,1.10,2026-10-15,spot\n",
            "defaults.csv": defaults,
        ])
        let t = try await TestApp.make { $0.pricingDirectory = dir }
        try await t.application().test(.router) { client in
            func prices(_ at: String) async throws -> [String] {
                let list = try await client.get("/v1/rates?at=\(at)", key: t.financeKey).json["rates"] as? [[String: Any]] ?? []
                return list.map { "\($0["tier"] as? String ?? "") \($0["usd_per_gpu_hour"] as? String ?? "")" }
            }
            #expect(try await prices("2026-09-30") == [])
            #expect(try await prices("2026-10-01") == ["on_demand 7.20"])
            #expect(try await prices("2026-10-20T00:00:00Z") == ["on_demand 7.20", "spot 1.10"])
            #expect(try await prices("2026-11-01") == ["on_demand 3.60", "spot 1.10"])
            #expect(try await client.get("/v1/rates?at=yesterday", key: t.financeKey).status == .badRequest)
            // Strict like every report: a misspelt parameter is not silently ignored.
            #expect(try await client.get("/v1/rates?as_of=2026-11-15", key: t.financeKey).errorCode == "bad_query")
            #expect(try await client.get("/v1/rates", key: nil).status == .unauthorized)
            // Ingest accepts the cards' accelerators only.
            let unknown = try await client.post("/v1/usage", key: t.ingestKey, body: record("x", ["accelerator": "\"L4\""]))
            #expect(unknown.status == .unprocessableContent)
        }
    }
}
