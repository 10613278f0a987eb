import Foundation
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

/// Closing a month (contract section 5) as finance sees it: the invoice never moves, whatever
/// arrives later, and what arrives later is billed as corrections that make invoice plus
/// corrections equal the ledger to the cent.
@Suite struct PeriodTests {
    static let pricing = "acme-cloud,r1,H100,on_demand,3.60,2026-09-01,list\n"

    func app() async throws -> (TestApp, String) {
        let dir = try pricingFolder(["cloud.csv": Self.pricing], defaults: "H100,acme-cloud,r1,on_demand\n")
        return (try await TestApp.make { $0.pricingDirectory = dir }, dir)
    }

    func usage(_ id: String, _ tenant: String, pool: String?, at: String, gpuSeconds: String) -> String {
        usageRecord(id, tenant, pool: pool, at: at, gpuSeconds: gpuSeconds)
    }

    /// The ledger's own figure of `period` per tenant (nil: unallocated idle), as the store computes it now.
    func ledger(_ t: TestApp, _ period: String) async throws -> [String?: Decimal] {
        try await t.database.withDatabase { db in
            try await CostStore(database: db).bill(period: Period.parse(period)!, tenant: nil, now: TestClock.now).figures
        }
    }

    static func money(_ s: Any?) -> Decimal { Decimal(string: s as? String ?? "", locale: Locale(identifier: "en_US_POSIX")) ?? -999_999 }

    @Test func aClosedMonthNeverMovesAndLaterChangesAreCorrectionsThatAddUpToTheLedger() async throws {
        let (t, pricingDir) = try await app()
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/gpu-a", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"acme-cloud","region":"r1","tier":"on_demand"}"#).status == .created)
            #expect(try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-10-01T00:00:00Z","gpus":2}"#).status == .created)
            try await client.ingest([
                usage("a1", "acme", pool: "gpu-a", at: "2026-10-03T10:00:00Z", gpuSeconds: "7200"),
                usage("g1", "globex", pool: "gpu-a", at: "2026-10-04T10:00:00Z", gpuSeconds: "3600"),
                usage("a2", "acme", pool: nil, at: "2026-10-05T10:00:00Z", gpuSeconds: "1800"),
            ], key: t.adminKey)

            // Close October.
            let closed = try await client.post("/v1/periods/2026-10/close", key: t.financeKey, body: "")
            #expect(closed.status == .created, "\(closed.body)")
            let invoiceID = try #require(closed.json["invoice_id"] as? String)
            #expect(closed.json["period"] as? String == "2026-10")
            #expect(closed.json["closed_at"] as? String == TestClock.now.rfc3339)
            let before = try await (
                client.get("/v1/chargeback?period=2026-10", key: t.adminKey).body,
                client.get("/v1/chargeback?period=2026-10&format=csv", key: t.adminKey).body,
                client.get("/v1/chargeback?period=2026-10&format=focus", key: t.adminKey).body)
            let invoice = try await client.get("/v1/chargeback?period=2026-10", key: t.adminKey).json
            #expect(invoice["invoice_id"] as? String == invoiceID)
            let invoiceTotal = ((invoice["rows"] as? [[String: Any]]) ?? []).reduce(Decimal(0)) { $0 + Self.money($1["total_cost_usd"]) }
                + Self.money((invoice["fleet"] as? [String: Any])?["unallocated_idle_cost_usd"])
            #expect(Self.money(closed.json["total_cost_usd"]) == invoiceTotal)
            #expect(csvRows(before.2).allSatisfy { $0["InvoiceId"] == invoiceID })
            let invoiced = try await ledger(t, "2026-10")

            // Then October changes: late records, a rate from mid-October on, a capacity event inside it.
            try await client.ingest([
                usage("a3", "acme", pool: "gpu-a", at: "2026-10-20T10:00:00Z", gpuSeconds: "3600"),
                usage("i1", "initech", pool: nil, at: "2026-10-21T10:00:00Z", gpuSeconds: "900"),
            ], key: t.adminKey)
            try ("provider,region,accelerator,tier,usd_per_gpu_hour,effective_from,source\n" + Self.pricing + "acme-cloud,r1,H100,on_demand,4.00,2026-10-15T06:00:00Z,list\n")
                .write(toFile: pricingDir + "/cloud.csv", atomically: true, encoding: .utf8)
            let reload = try await client.post("/v1/rates/reload", key: t.adminKey, contentType: nil, body: "")
            #expect(reload.status == .ok, "\(reload.body)")
            #expect(try await client.post("/v1/pools/gpu-a/capacity", key: t.adminKey, body: #"{"at":"2026-10-25T12:00:00Z","gpus":3}"#).status == .created)
            let now = try await ledger(t, "2026-10")
            #expect(now != invoiced, "the ledger's October moved")

            // October's chargeback is the invoice, byte for byte, in every format.
            let after = try await (
                client.get("/v1/chargeback?period=2026-10", key: t.adminKey).body,
                client.get("/v1/chargeback?period=2026-10&format=csv", key: t.adminKey).body,
                client.get("/v1/chargeback?period=2026-10&format=focus", key: t.adminKey).body)
            #expect(after.0 == before.0)
            #expect(after.1 == before.1)
            #expect(after.2 == before.2)

            // November bills the difference per tenant: invoice + corrections = ledger, to the cent.
            let november = try await client.get("/v1/chargeback?period=2026-11", key: t.adminKey).json
            #expect(november["invoice_id"] is NSNull)
            var corrected: [String: Decimal] = [:]
            for row in (november["rows"] as? [[String: Any]]) ?? [] {
                corrected[row["tenant"] as? String ?? "?"] = Self.money(row["correction_cost_usd"])
            }
            for (tenant, figure) in now {
                guard let tenant else { continue }
                #expect((invoiced[tenant] ?? 0) + (corrected[tenant] ?? 0) == figure, "\(tenant): \(invoiced[tenant] ?? 0) + \(corrected[tenant] ?? 0) vs \(figure)")
            }
            #expect((corrected["initech"] ?? 0) > 0, "a tenant new in October since the close is corrected too")
            let focus = csvRows(try await client.get("/v1/chargeback?period=2026-11&format=focus", key: t.adminKey).body)
            let corrections = focus.filter { $0["ChargeClass"] == "Correction" }
            #expect(!corrections.isEmpty)
            #expect(corrections.allSatisfy { $0["ChargePeriodStart"] == "2026-10-01T00:00:00Z" && $0["ChargePeriodEnd"] == "2026-11-01T00:00:00Z" })
            let fleetCorrection = corrections.reduce(Decimal(0)) { $0 + Self.money($1["BilledCost"]) }
            let ledgerTotal = now.values.reduce(Decimal(0), +), invoicedTotal = invoiced.values.reduce(Decimal(0), +)
            #expect(fleetCorrection == ledgerTotal - invoicedTotal)
            #expect(Self.money((november["fleet"] as? [String: Any])?["correction_cost_usd"]) == fleetCorrection)

            // A tenant key sees its own corrections only.
            let mine = try await client.get("/v1/chargeback?period=2026-11&format=focus", key: t.acmeTenantKey).body
            #expect(csvRows(mine).filter { $0["ChargeClass"] == "Correction" }.allSatisfy { $0["SubAccountId"] == "acme" })
            #expect(csvRows(mine).contains { $0["ChargeClass"] == "Correction" })

            // The console's Tenants page says so: October closed with its invoice id, November's corrections.
            let console = ConsoleTests()
            let session = try await console.signIn(client, key: t.financeKey)
            let octoberPage = try await console.page(client, "/tenants?period=2026-10", session: session).body
            #expect(octoberPage.contains("<strong>Closed</strong>: invoice <code>\(invoiceID)</code>"))
            let novemberPage = try await console.page(client, "/tenants?period=2026-11", session: session).body
            #expect(novemberPage.contains("id=\"corrections\"") && novemberPage.contains("Corrections of closed months billed in 2026-11"))

            // Closing again is 409, the current month 422; tenant and ingest keys may not close.
            #expect(try await client.post("/v1/periods/2026-10/close", key: t.adminKey, body: "").status == .conflict)
            #expect(try await client.post("/v1/periods/\(TestClock.month)/close", key: t.adminKey, body: "").status == .unprocessableContent)
            #expect(try await client.post("/v1/periods/2026-09/close", key: t.acmeTenantKey, body: "").status == .forbidden)
            #expect(try await client.post("/v1/periods/2026-13/close", key: t.adminKey, body: "").status == .notFound)
            let periods = try await client.get("/v1/periods", key: t.financeKey).json["periods"] as? [[String: Any]] ?? []
            #expect(periods.map { $0["invoice_id"] as? String } == [invoiceID])

            // Closing November freezes its corrections too; December then corrects only what moved since.
            #expect(try await client.post("/v1/periods/2026-11/close", key: t.adminKey, body: "").status == .created)
            let december = try await client.get("/v1/chargeback?period=2026-12", key: t.adminKey).json
            let decemberCorrections = ((december["rows"] as? [[String: Any]]) ?? []).reduce(Decimal(0)) { $0 + Self.money($1["correction_cost_usd"]) }
            #expect(decemberCorrections == 0, "nothing moved since November's close")
        }
    }

    @Test func aCloseRacingIngestLosesAndDoubleCountsNothing() async throws {
        let (t, _) = try await app()
        try await t.application().test(.router) { client in
            try await client.ingest((0..<20).map { usage("r\($0)", $0 % 2 == 0 ? "acme" : "globex", pool: nil, at: "2026-10-1\($0 % 10)T10:00:00Z", gpuSeconds: "360") },
                                    key: t.adminKey)
            // A close and batches of late October records at once.
            async let close = client.post("/v1/periods/2026-10/close", key: t.adminKey, body: "")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for b in 0..<4 {
                    group.addTask {
                        try await client.ingest((0..<25).map { usage("late\(b)-\($0)", $0 % 2 == 0 ? "acme" : "globex", pool: nil,
                                                                     at: "2026-10-2\($0 % 10)T10:00:00Z", gpuSeconds: "36") }, key: t.adminKey)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await close.status == .created)
            let invoice = try await client.get("/v1/chargeback?period=2026-10", key: t.adminKey).json
            let november = try await client.get("/v1/chargeback?period=2026-11", key: t.adminKey).json
            let ledger = try await ledger(t, "2026-10")
            for tenant in ["acme", "globex"] {
                let i = ((invoice["rows"] as? [[String: Any]]) ?? []).first { $0["tenant"] as? String == tenant }.map { Self.money($0["total_cost_usd"]) } ?? 0
                let c = ((november["rows"] as? [[String: Any]]) ?? []).first { $0["tenant"] as? String == tenant }.map { Self.money($0["correction_cost_usd"]) } ?? 0
                #expect(i + c == ledger[tenant], "\(tenant): invoice \(i) + correction \(c) = ledger \(ledger[tenant] ?? -1)")
            }
            // Every record is in the ledger once: 20 + 100 requests, each 360 or 36 GPU-seconds at 3.60/h.
            #expect(ledger.values.reduce(Decimal(0), +) == Decimal(20 * 360 + 100 * 36) * Decimal(string: "0.001")!)
        }
    }
}
