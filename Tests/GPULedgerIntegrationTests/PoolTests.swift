import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
import GPULedgerTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct PoolTests {
    let header = "provider,region,accelerator,tier,usd_per_gpu_hour,effective_from,source\n"

    func app() async throws -> TestApp {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpl-pools-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try (header + "acme-cloud,r1,H100,on_demand,3.60,2026-10-01,list\nacme-cloud,r1,H100,reserved,1.80,2026-10-01,contract\n")
            .write(toFile: dir + "/cloud.csv", atomically: true, encoding: .utf8)
        try "accelerator,provider,region,tier\nH100,acme-cloud,r1,on_demand\n".write(toFile: dir + "/defaults.csv", atomically: true, encoding: .utf8)
        return try await TestApp.make { $0.pricingDirectory = dir }
    }

    func put(_ client: some TestClientProtocol, _ t: TestApp, _ pool: String, _ body: String, key: String? = nil) async throws -> Answer {
        var headers: HTTPFields = [.authorization: "Bearer \(key ?? t.adminKey)", .contentType: "application/json"]
        headers[.accept] = "application/json"
        return try await client.execute(uri: "/v1/pools/\(pool)", method: .put, headers: headers, body: .init(string: body)) { r in
            Answer(status: r.status, headers: r.headers, body: String(buffer: r.body))
        }
    }

    @Test func aPoolPinsItsRateAndMayOverrideIt() async throws {
        let t = try await app()
        try await t.application().test(.router) { client in
            let created = try await put(client, t, "gpu-a", #"{"accelerator":"H100","provider":"acme-cloud","region":"r1","tier":"reserved"}"#)
            #expect(created.status == .created)
            #expect(created.json["usd_per_gpu_hour"] is NSNull)
            _ = try await client.post("/v1/usage", key: t.ingestKey, body: "[" + [
                record("in-pool", ["pool": "\"gpu-a\"", "gpu_seconds": "3600"]),
                record("no-pool", ["gpu_seconds": "3600"]),
                record("unknown-pool", ["pool": "\"gpu-z\"", "gpu_seconds": "3600"]),
            ].joined(separator: ",") + "]")
            #expect(try await client.get("/v1/usage/acme/in-pool", key: t.adminKey).json["cost_usd"] as? String == "1.800000000000")
            #expect(try await client.get("/v1/usage/acme/no-pool", key: t.adminKey).json["cost_usd"] as? String == "3.600000000000")
            #expect(try await client.get("/v1/usage/acme/unknown-pool", key: t.adminKey).json["cost_usd"] as? String == "3.600000000000")
            let updated = try await put(client, t, "gpu-a", #"{"accelerator":"H100","provider":"acme-cloud","region":"r1","tier":"reserved","usd_per_gpu_hour":"0.90"}"#)
            #expect(updated.status == .ok)
            let priced = try await client.get("/v1/usage/acme/in-pool", key: t.adminKey).json
            #expect(priced["cost_usd"] as? String == "0.900000000000")
            #expect((priced["rate"] as? [String: Any])?["source"] as? String == "pool gpu-a")
            #expect((priced["rate"] as? [String: Any])?["effective_from"] is NSNull)
        }
    }

    @Test func poolDefinitionsAreValidatedAndAdminOnly() async throws {
        let t = try await app()
        try await t.application().test(.router) { client in
            let bad = try await put(client, t, "p", #"{"accelerator":"","provider":"x","region":"y","tier":"cheap","usd_per_gpu_hour":2.5,"color":"red"}"#)
            #expect(bad.status == .unprocessableContent)
            #expect(Set(bad.details.compactMap { $0["field"] as? String }) == ["accelerator", "tier", "usd_per_gpu_hour", "color"])
            #expect(try await put(client, t, "p", #"{"accelerator":"H100","provider":"x","region":"y","tier":"spot"}"#, key: t.financeKey).status == .forbidden)
            #expect(try await put(client, t, "p", "not json").status == .badRequest)
        }
    }

    @Test func capacityEventsAreIdempotentAndNotRewritten() async throws {
        let t = try await app()
        try await t.application().test(.router) { client in
            #expect(try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-11-01T00:00:00Z","gpus":8}"#).status == .notFound)
            _ = try await put(client, t, "gpu-a", #"{"accelerator":"H100","provider":"acme-cloud","region":"r1","tier":"reserved"}"#)
            let first = try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-11-01T00:00:00Z","gpus":8}"#)
            #expect(first.status == .created)
            #expect(try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-11-01T00:00:00Z","gpus":8}"#).status == .created)
            let clash = try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-11-01T00:00:00Z","gpus":16}"#)
            #expect(clash.status == .conflict)
            _ = try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-11-15","gpus":16}"#)
            let bad = try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"soon","gpus":-1}"#)
            #expect(bad.status == .unprocessableContent)
            let shown = try await client.get("/v1/pools/gpu-a", key: t.acmeTenantKey).json
            let capacity = shown["capacity"] as? [[String: Any]] ?? []
            #expect(capacity.map { "\($0["at"] as? String ?? "") \($0["gpus"] as? Int ?? -1)" } == ["2026-11-01T00:00:00Z 8", "2026-11-15T00:00:00Z 16"])
            #expect((try await client.get("/v1/pools", key: t.financeKey).json["pools"] as? [[String: Any]])?.count == 1)
            // 0 and 1 are GPU counts (Foundation on Linux calls them Bool); true is not.
            #expect(try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-11-20","gpus":0}"#).status == .created)
            #expect(try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-11-21","gpus":1}"#).status == .created)
            #expect(try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-11-22","gpus":true}"#).status == .unprocessableContent)
        }
    }
}
