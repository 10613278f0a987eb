import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
import GPULedgerCore
import GPULedgerTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct ChargebackTests {
    /// H100 at 3.60 on demand (the default) and 1.80 reserved; pool gpu-a buys reserved H100s.
    func app() async throws -> TestApp {
        let dir = try pricingFolder(
            ["cloud.csv": "acme-cloud,r1,H100,on_demand,3.60,2026-10-01,list\nacme-cloud,r1,H100,reserved,1.80,2026-10-01,contract\n"],
            defaults: "H100,acme-cloud,r1,on_demand\n")
        return try await TestApp.make { $0.pricingDirectory = dir }
    }

    func usage(_ id: String, _ tenant: String, pool: String?, at: String, gpuSeconds: String) -> String {
        usageRecord(id, tenant, pool: pool, at: at, gpuSeconds: gpuSeconds)
    }

    /// The example worked by hand (README, "Chargeback"). Pool gpu-a holds 2 reserved H100s
    /// (1.80/GPU-hour = 0.0005/GPU-second) from 2026-10-31T20:00Z: 4 hours of October, 8 GPU-hours,
    /// 14.40 provisioned.
    /// - 20:00 acme 2000, globex 1600, initech 1600 GPU-s: used 5200 of 7200, idle 2000 = 1.00,
    ///   shared 2000:1600:1600 (0.3846…, 0.3077…, 0.3077…).
    /// - 21:00 globex 9000 GPU-s: 1800 over capacity (0.90), flagged; no idle.
    /// - 22:00, 23:00 no usage: 14400 GPU-s idle = 7.20, unallocated.
    /// - acme 3600 GPU-s with no pool at the default 3.60 = 3.60.
    /// Usage: acme 1.00 + 3.60 = 4.60, globex 0.80 + 4.50 = 5.30, initech 0.80; fleet 10.70.
    /// Paid: 14.40 + 0.90 + 3.60 = 18.90, so idle is 18.90 − 10.70 = 8.20 cents' worth, split by
    /// largest remainder over 0.3846, 0.3077, 0.3077, 7.20: floors 0.38 + 0.30 + 0.30 + 7.20 = 8.18,
    /// the two missing cents go to the largest remainders (globex, initech: 0.77 of a cent).
    @Test func theHandWorkedIdleExampleComesOutExactly() async throws {
        let t = try await app()
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/gpu-a", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"acme-cloud","region":"r1","tier":"reserved"}"#).status == .created)
            #expect(try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-10-31T20:00:00Z","gpus":2}"#).status == .created)
            try await client.ingest([
                usage("a1", "acme", pool: "gpu-a", at: "2026-10-31T20:10:00Z", gpuSeconds: "2000"),
                usage("g1", "globex", pool: "gpu-a", at: "2026-10-31T20:20:00Z", gpuSeconds: "1600"),
                usage("i1", "initech", pool: "gpu-a", at: "2026-10-31T20:59:59.999999Z", gpuSeconds: "1600"),
                usage("g2", "globex", pool: "gpu-a", at: "2026-10-31T21:00:00Z", gpuSeconds: "9000"),
                usage("a2", "acme", pool: nil, at: "2026-10-15T08:00:00Z", gpuSeconds: "3600"),
            ], key: t.adminKey)
            let answer = try await client.get("/v1/chargeback?period=2026-10", key: t.financeKey)
            #expect(answer.status == .ok, "\(answer.body)")
            let rows = answer.json["rows"] as? [[String: Any]] ?? []
            let shown = rows.map { "\($0["tenant"] as? String ?? "") \($0["usage_cost_usd"] as? String ?? "") \($0["idle_cost_usd"] as? String ?? "") \($0["total_cost_usd"] as? String ?? "")" }
            #expect(shown == ["acme 4.60 0.38 4.98", "globex 5.30 0.31 5.61", "initech 0.80 0.31 1.11"])
            let fleet = answer.json["fleet"] as? [String: Any] ?? [:]
            #expect(fleet["provisioned_cost_usd"] as? String == "14.40")
            #expect(fleet["usage_cost_usd"] as? String == "10.70")
            #expect(fleet["idle_cost_usd"] as? String == "8.20")
            #expect(fleet["unallocated_idle_cost_usd"] as? String == "7.20")
            #expect(fleet["total_cost_usd"] as? String == "18.90")
            let over = fleet["over_capacity"] as? [String: Any] ?? [:]
            #expect("\(over["gpu_seconds"] ?? "")" == "1800")
            #expect(over["cost_usd"] as? String == "0.90")
            #expect(over["pool_hours"] as? Int == 1)
            #expect(rows.first?["requests"] as? Int == 2)

            // The same figures as CSV, and the costs report agrees on usage.
            let csv = try await client.get("/v1/chargeback?period=2026-10&format=csv", key: t.financeKey)
            #expect(csv.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(csvRows(csv.body).map { "\($0["tenant"] ?? "") \($0["total_cost_usd"] ?? "")" } == ["acme 4.98", "globex 5.61", "initech 1.11"])
            let costs = try await client.get("/v1/costs?from=2026-10-01&to=2026-11-01&group_by=tenant", key: t.financeKey).json
            let costRows = costs["rows"] as? [[String: Any]] ?? []
            #expect(costRows.map { "\($0["tenant"] as? String ?? "") \($0["cost_usd"] as? String ?? "")" }
                    == ["acme 4.600000000000", "globex 5.300000000000", "initech 0.800000000000"])
            #expect((costs["total"] as? [String: Any])?["cost_usd"] as? String == "10.700000000000")
        }
    }

    @Test func theFOCUSExportHasEveryMandatoryColumnAndAddsUpToTheChargeback() async throws {
        let t = try await app()
        try await t.application().test(.router) { client in
            _ = try await client.put("/v1/pools/gpu-a", key: t.adminKey, body: #"{"accelerator":"H100","provider":"acme-cloud","region":"r1","tier":"reserved"}"#)
            _ = try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-10-31T20:00:00Z","gpus":2}"#)
            try await client.ingest([
                usage("a1", "acme", pool: "gpu-a", at: "2026-10-31T20:10:00Z", gpuSeconds: "2000"),
                usage("g1", "globex", pool: "gpu-a", at: "2026-10-31T20:20:00Z", gpuSeconds: "1600.5"),
                usage("a2", "acme", pool: nil, at: "2026-10-15T08:00:00Z", gpuSeconds: "3599.25"),
            ], key: t.adminKey)
            let json = try await client.get("/v1/chargeback?period=2026-10", key: t.financeKey).json
            let total = (json["fleet"] as? [String: Any])?["total_cost_usd"] as? String ?? ""
            let focus = try await client.get("/v1/chargeback?period=2026-10&format=focus", key: t.financeKey)
            #expect(focus.status == .ok)
            let lines = CSVRows.parse(focus.body)
            let header = lines.first?.fields ?? []
            for column in FOCUSExport.mandatoryColumns { #expect(header.contains(column), "missing \(column)") }
            for column in ["ConsumedQuantity", "ConsumedUnit", "ListUnitPrice", "ContractedUnitPrice", "SubAccountId", "SkuId", "Tags"] {
                #expect(header.contains(column), "missing \(column)")
            }
            let custom = header.filter { !FOCUSExport.mandatoryColumns.contains($0) && ![
                "ConsumedQuantity", "ConsumedUnit", "ListUnitPrice", "ContractedUnitPrice", "SubAccountId", "SubAccountName", "SkuId", "SkuPriceId",
                "PricingCategory", "RegionId", "ResourceId", "ResourceName", "Tags", "ChargeFrequency", "InvoiceId", "ServiceSubcategory",
            ].contains($0) }
            #expect(!custom.isEmpty && custom.allSatisfy { $0.hasPrefix("x_") })
            #expect(lines.dropFirst().allSatisfy { $0.fields.count == header.count })
            let rows = csvRows(focus.body)
            // acme usage in the pool and at the default rate, globex usage, both idle shares, unallocated idle.
            #expect(rows.count == 6)
            let plainDecimal = /^-?[0-9]+(\.[0-9]+)?$/
            let time = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$/
            var billed = Decimal(0)
            for row in rows {
                for c in ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity", "ListUnitPrice", "ContractedUnitPrice", "ConsumedQuantity"] {
                    #expect((row[c] ?? "").wholeMatch(of: plainDecimal) != nil, "\(c)=\(row[c] ?? "")")
                }
                for c in ["BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"] {
                    #expect((row[c] ?? "").wholeMatch(of: time) != nil, "\(c)=\(row[c] ?? "")")
                }
                #expect(row["BillingPeriodStart"] == "2026-10-01T00:00:00Z" && row["BillingPeriodEnd"] == "2026-11-01T00:00:00Z")
                #expect(row["BillingCurrency"] == "USD" && row["ChargeCategory"] == "Usage" && row["PricingUnit"] == "GPU-Hours")
                let d = { (c: String) in Decimal(string: row[c] ?? "", locale: Locale(identifier: "en_US_POSIX")) ?? -1 }
                #expect(d("ListUnitPrice") * d("PricingQuantity") == d("ListCost"))
                #expect(d("ContractedUnitPrice") * d("PricingQuantity") == d("ContractedCost"))
                #expect(abs(d("ListCost") - d("BilledCost")) < Decimal(string: "0.01")!)
                billed += d("BilledCost")
            }
            #expect(FOCUSExport.plain(billed, minScale: 2) == total)
            #expect(Set(rows.map { $0["SubAccountId"] ?? "" }) == ["acme", "globex", ""])
            #expect(Set(rows.map { $0["x_ChargeType"] ?? "" }) == ["usage", "idle_share", "unallocated_idle"])
        }
    }

    @Test func tenantKeysSeeOnlyTheirOwnCostsAndChargeback() async throws {
        let t = try await app()
        try await t.application().test(.router) { client in
            try await client.ingest([
                usage("a1", "acme", pool: nil, at: "2026-10-10T10:00:00Z", gpuSeconds: "3600"),
                usage("g1", "globex", pool: nil, at: "2026-10-10T10:00:00Z", gpuSeconds: "7200"),
            ], key: t.adminKey)
            let mine = try await client.get("/v1/costs?from=2026-10-01&to=2026-11-01&group_by=tenant", key: t.acmeTenantKey).json
            #expect((mine["rows"] as? [[String: Any]])?.map { $0["tenant"] as? String ?? "" } == ["acme"])
            #expect((mine["total"] as? [String: Any])?["cost_usd"] as? String == "3.600000000000")
            let unscoped = try await client.get("/v1/costs?from=2026-10-01&to=2026-11-01", key: t.acmeTenantKey).json
            #expect((unscoped["total"] as? [String: Any])?["requests"] as? Int == 1)
            #expect(try await client.get("/v1/costs?tenant=globex", key: t.acmeTenantKey).status == .forbidden)
            #expect(try await client.get("/v1/chargeback?period=2026-10&tenant=globex", key: t.acmeTenantKey).status == .forbidden)
            #expect(try await client.get("/v1/costs", key: t.ingestKey).status == .forbidden)
            #expect(try await client.get("/v1/chargeback", key: t.ingestKey).status == .forbidden)
            #expect(try await client.get("/v1/costs", key: nil).status == .unauthorized)
            let bill = try await client.get("/v1/chargeback?period=2026-10", key: t.acmeTenantKey).json
            #expect((bill["rows"] as? [[String: Any]])?.map { $0["tenant"] as? String ?? "" } == ["acme"])
            #expect(bill["fleet"] is NSNull || bill["fleet"] == nil)
            let focus = csvRows(try await client.get("/v1/chargeback?period=2026-10&format=focus", key: t.acmeTenantKey).body)
            #expect(!focus.isEmpty && focus.allSatisfy { $0["SubAccountId"] == "acme" })
            let csv = csvRows(try await client.get("/v1/costs?from=2026-10-01&to=2026-11-01&group_by=tenant&format=csv", key: t.acmeTenantKey).body)
            #expect(csv.map { $0["tenant"] ?? "" } == ["acme"])
            // finance sees both
            let all = try await client.get("/v1/costs?from=2026-10-01&to=2026-11-01&group_by=tenant", key: t.financeKey).json
            #expect((all["rows"] as? [[String: Any]])?.count == 2)
        }
    }

    @Test func badReportQueriesAre400sThatSayWhatIsWrong() async throws {
        let t = try await app()
        try await t.application().test(.router) { client in
            for (uri, words) in [
                ("/v1/costs?group_by=tenant,colour", "colour"), ("/v1/costs?from=yesterday", "from=yesterday"),
                ("/v1/costs?from=2026-11-02&to=2026-11-01", "after"), ("/v1/costs?tenants=acme", "tenants"),
                ("/v1/costs?format=xml", "format=xml"), ("/v1/chargeback?period=2026-13", "period=2026-13"),
                ("/v1/chargeback?format=pdf", "format=pdf"), ("/v1/costs?group_by=label:", "label"),
            ] {
                let answer = try await client.get(uri, key: t.financeKey)
                #expect(answer.status == .badRequest, "\(uri)")
                #expect((answer.error["message"] as? String ?? "").contains(words), "\(uri): \(answer.body)")
            }
        }
    }
}
