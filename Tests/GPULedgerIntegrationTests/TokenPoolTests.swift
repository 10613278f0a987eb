import Foundation
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

/// Pools that allocate by tokens (contract section 5), as a platform team sees them: records
/// without GPU-seconds, each hour's paid cost split by token weight, chargeback that adds up.
@Suite struct TokenPoolTests {
    typealias O = CostOracleTests
    static let hourUS: Int64 = 3_600_000_000

    struct PoolDef {
        var name: String
        var tokens: Bool
        var price: Decimal
        /// input, cached_input, output (nil: the defaults 1, 0.1, 4).
        var weights: (Decimal, Decimal, Decimal)?
        var capacity: [(Int64, Int)]
    }

    struct Rec {
        var id, tenant: String
        var pool: String
        var at: Int64
        var gs: Decimal?
        var input, cached, output: Int64
    }

    /// A random October 2026: two pools that allocate by tokens (one with its own weights) and one
    /// by GPU-seconds, each with capacity that changes at odd times mid-month, and records with and
    /// without GPU-seconds, cached input and hours with no tokens at all.
    struct Fleet {
        var pools: [PoolDef] = []
        var records: [Rec] = []

        init(seed: UInt64) {
            var rng = SplitMix(seed: seed)
            func capacity() -> [(Int64, Int)] {
                var events: [(Int64, Int)] = [(O.time("2026-09-30T20:00:00Z"), 1 + Int(rng.next() % 3))]
                for _ in 0..<(1 + rng.next() % 3) {
                    let at = O.time("2026-10-01") + Int64(rng.next() % (30 * 86_400)) * 1_000_000 + Int64(rng.next() % 1_000_000)
                    events.append((at, Int(rng.next() % 4)))
                }
                return events.sorted { $0.0 < $1.0 }
            }
            pools = [
                PoolDef(name: "tok-default", tokens: true, price: O.dec("2.49"), weights: nil, capacity: capacity()),
                PoolDef(name: "tok-custom", tokens: true, price: O.dec("3.125"), weights: (O.dec("0.5"), 0, O.dec("7.25")), capacity: capacity()),
                PoolDef(name: "gpu", tokens: false, price: O.dec("1.9"), weights: nil, capacity: capacity()),
            ]
            let tenants = ["acme", "globex", "initech"]
            for i in 0..<240 {
                let pool = pools[Int(rng.next() % 3)]
                // Only the first 20 days of the month carry records: the rest is unallocated.
                let at = O.time("2026-09-30T23:00:00Z") + Int64(rng.next() % UInt64(21 * 86_400)) * 1_000_000 + Int64(rng.next() % 1_000_000)
                let input = rng.next() % 8 == 0 ? 0 : Int64(rng.next() % 6000)
                let cached = input > 0 && rng.next() % 2 == 0 ? Int64(rng.next() % UInt64(input + 1)) : 0
                let output = rng.next() % 8 == 0 ? 0 : Int64(rng.next() % 900)
                let gs: Decimal? = !pool.tokens || rng.next() % 3 == 0 ? Decimal(Int(rng.next() % 4_000_000)) / 1000 : nil
                records.append(Rec(id: "t\(i)", tenant: tenants[Int(rng.next() % 3)], pool: pool.name, at: at, gs: gs,
                                   input: input, cached: cached, output: output))
            }
        }

        func weight(_ r: Rec, _ p: PoolDef) -> Decimal {
            let (wi, wc, wo) = p.weights ?? (1, O.dec("0.1"), 4)
            return wi * Decimal(r.input - r.cached) + wc * Decimal(r.cached) + wo * Decimal(r.output)
        }

        func json(_ r: Rec) -> String {
            var s = "{\"request_id\":\"\(r.id)\",\"tenant\":\"\(r.tenant)\",\"model\":\"llama-3.1-70b\",\"accelerator\":\"H100\",\"pool\":\"\(r.pool)\","
            s += "\"started_at\":\"\(Timestamp(microseconds: r.at).rfc3339)\",\"input_tokens\":\(r.input),\"output_tokens\":\(r.output)"
            if r.cached > 0 { s += ",\"cached_input_tokens\":\(r.cached)" }
            if let gs = r.gs { s += ",\"gpu_seconds\":\(gs)" }
            return s + "}"
        }

        func definition(_ p: PoolDef) -> String {
            var s = "{\"accelerator\":\"H100\",\"provider\":\"acme-cloud\",\"region\":\"r1\",\"tier\":\"reserved\",\"usd_per_gpu_hour\":\"\(p.price)\""
            if p.tokens { s += ",\"allocation\":\"tokens\"" }
            if let (wi, wc, wo) = p.weights { s += ",\"token_weights\":{\"input\":\(wi),\"cached_input\":\(wc),\"output\":\(wo)}" }
            return s + "}"
        }

        /// Provisioned GPU-seconds of `p` in the hour starting at `hour`.
        func provisioned(_ p: PoolDef, hour: Int64) -> Decimal {
            var prov = Decimal(0)
            for (i, e) in p.capacity.enumerated() {
                let s = max(e.0, hour), f = min(i + 1 < p.capacity.count ? p.capacity[i + 1].0 : Int64.max, hour + TokenPoolTests.hourUS)
                if f > s { prov += Decimal(e.1) * Decimal(f - s) / 1_000_000 }
            }
            return prov
        }

        /// The chargeback the contract's rules give, in plain arithmetic: per tenant its usage (its
        /// GPU-seconds priced in a `gpu_seconds` pool; its weight's share of each hour's paid cost in
        /// a `tokens` one) and idle share (only in the `gpu_seconds` pool), and the unallocated idle.
        func expected() -> (rows: [String], fleet: [String: String]) {
            let start = O.time("2026-10-01"), end = O.time("2026-11-01")
            let recs = records.filter { $0.at >= start && $0.at < end }
            var usage: [String: Decimal] = [:], idle: [String: Decimal] = [:]
            var unallocated = Decimal(0), provisioned = Decimal(0)
            for p in pools {
                var hour = start
                while hour < end {
                    let prov = self.provisioned(p, hour: hour)
                    let paid = prov * p.price / 3600
                    provisioned += paid
                    let inHour = recs.filter { $0.pool == p.name && $0.at >= hour && $0.at < hour + TokenPoolTests.hourUS }
                    if p.tokens {
                        let total = inHour.reduce(Decimal(0)) { $0 + weight($1, p) }
                        if total > 0 {
                            for r in inHour { usage[r.tenant, default: 0] += paid * weight(r, p) / total }
                        } else {
                            unallocated += paid
                        }
                    } else {
                        var used: [String: Decimal] = [:]
                        for r in inHour { used[r.tenant, default: 0] += r.gs ?? 0; usage[r.tenant, default: 0] += (r.gs ?? 0) * p.price / 3600 }
                        let total = used.values.reduce(0, +)
                        let idleCost = max(prov - total, 0) * p.price / 3600
                        if total > 0 { for (t, u) in used { idle[t, default: 0] += idleCost * u / total } } else { unallocated += idleCost }
                    }
                    hour += TokenPoolTests.hourUS
                }
            }
            let tenants = Set(recs.map(\.tenant)).sorted()
            let u = tenants.map { usage[$0] ?? 0 }, i = tenants.map { idle[$0] ?? 0 }
            let usageTotal = u.reduce(0, +)
            let paid = usageTotal + i.reduce(0, +) + unallocated
            let cents = { (d: Decimal) -> Decimal in var v = d, o = Decimal(); NSDecimalRound(&o, &v, 2, .plain); return o }
            let usageCents = O.apportion(u, to: cents(usageTotal))
            let idleCents = O.apportion(i + [unallocated], to: cents(paid) - cents(usageTotal))
            let rows = tenants.indices.map { k in
                "\(tenants[k]) \(O.fixed(usageCents[k], 2)) \(O.fixed(idleCents[k], 2)) \(O.fixed(usageCents[k] + idleCents[k], 2))"
            }
            return (rows, ["provisioned_cost_usd": O.fixed(provisioned, 2), "usage_cost_usd": O.fixed(cents(usageTotal), 2),
                           "unallocated_idle_cost_usd": O.fixed(idleCents.last!, 2), "total_cost_usd": O.fixed(cents(paid), 2)])
        }
    }

    static func setUp(_ fleet: Fleet, _ client: some TestClientProtocol, _ t: TestApp) async throws {
        for p in fleet.pools {
            let put = try await client.put("/v1/pools/\(p.name)", key: t.adminKey, body: fleet.definition(p))
            #expect(put.status == .created, "\(put.body)")
            for (at, gpus) in p.capacity {
                let c = try await client.post("/v1/pools/\(p.name)/capacity", key: t.adminKey,
                                              body: "{\"at\":\"\(Timestamp(microseconds: at).rfc3339)\",\"gpus\":\(gpus)}")
                #expect(c.status == .created, "\(c.body)")
            }
        }
        for chunk in stride(from: 0, to: fleet.records.count, by: 80).map({ Array(fleet.records[$0..<min($0 + 80, fleet.records.count)]) }) {
            try await client.ingest(chunk.map(fleet.json), key: t.ingestKey)
        }
    }

    static func chargebackRows(_ bill: [String: Any]) -> [String] {
        (bill["rows"] as? [[String: Any]] ?? []).map {
            "\($0["tenant"] as? String ?? "") \($0["usage_cost_usd"] as? String ?? "") \($0["idle_cost_usd"] as? String ?? "") \($0["total_cost_usd"] as? String ?? "")"
        }
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func chargebackSplitsEachHourByTokenWeightAndAddsUp(seed: UInt64) async throws {
        let fleet = Fleet(seed: seed)
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            try await Self.setUp(fleet, client, t)
            let expected = fleet.expected()
            for attempt in ["before the fold", "after the fold"] {
                let bill = try await client.get("/v1/chargeback?period=2026-10", key: t.financeKey).json
                #expect(Self.chargebackRows(bill) == expected.rows, "\(attempt)")
                let f = bill["fleet"] as? [String: Any] ?? [:]
                for (field, value) in expected.fleet { #expect(f[field] as? String == value, "\(field), \(attempt)") }
                // The tenants and the unallocated idle are the fleet's paid cost, to the cent.
                let tenants = (bill["rows"] as? [[String: Any]] ?? []).reduce(Decimal(0)) { $0 + O.dec($1["total_cost_usd"] as? String ?? "0") }
                #expect(tenants + O.dec(f["unallocated_idle_cost_usd"] as? String ?? "0") == O.dec(f["total_cost_usd"] as? String ?? "x"))
                try await t.database.withDatabase { db in _ = try await UsageStore(database: db).foldSummaries() }
            }
            // /v1/costs prices the same: its tenants' month equals the bill's usage (exact to 12 places
            // there, rounded to cents here).
            let costs = try await client.get("/v1/costs?from=2026-10-01&to=2026-11-01&group_by=tenant", key: t.financeKey).json
            let byTenant = Dictionary(uniqueKeysWithValues: (costs["rows"] as? [[String: Any]] ?? []).map {
                ($0["tenant"] as? String ?? "", O.dec($0["cost_usd"] as? String ?? "0"))
            })
            for row in expected.rows {
                let parts = row.split(separator: " ")
                let usage = O.dec(String(parts[1]))
                #expect(abs(NSDecimalNumber(decimal: (byTenant[String(parts[0])] ?? -1) - usage).doubleValue) < 0.01, "\(row)")
            }
            // A tokens pool's whole days are priced hour by hour and summed per day; grouped by
            // hour they are not: the two ways agree exactly, for every tenant and day.
            func exact(_ groupBy: String) async throws -> [String: Decimal] {
                let rows = try await client.get("/v1/costs?from=2026-10-01&to=2026-11-01&group_by=\(groupBy)&pool=tok-custom", key: t.financeKey)
                    .json["rows"] as? [[String: Any]] ?? []
                var out: [String: Decimal] = [:]
                for r in rows {
                    let key = (r["tenant"] as? String ?? "") + " " + String((r["day"] as? String ?? r["hour"] as? String ?? "").prefix(10))
                    out[key, default: 0] += O.dec(r["cost_usd"] as? String ?? "0")
                }
                return out
            }
            let byDay = try await exact("tenant,day"), byHour = try await exact("tenant,hour")
            #expect(!byDay.isEmpty && byDay == byHour)
            let cachedDays = try await t.database.withDatabase { db in
                try await db.withConnection { conn in
                    var n = 0
                    for try await c in try await conn.query("SELECT count(*)::int FROM token_share_days WHERE pool = 'tok-custom'", logger: TestDatabase.logger)
                        .decode(Int.self) { n = c }
                    return n
                }
            }
            #expect(cachedDays == 31, "every day of October is cached (so the comparisons below read the cache)")
            // The finished days' shares are cached (sql/0013); what changes a day moves it, cached
            // or not: a late record, a capacity event, new weights. Each time the two ways agree.
            var previous = byDay
            let changes: [(String, () async throws -> Void)] = [
                ("a late record", {
                    try await client.ingest([#"{"request_id":"late-1","tenant":"acme","model":"m","accelerator":"H100","pool":"tok-custom","started_at":"2026-10-02T05:30:00Z","input_tokens":90000,"output_tokens":5000}"#],
                                            key: t.adminKey)
                }),
                ("a capacity event", {
                    let status = try await client.post("/v1/pools/tok-custom/capacity", key: t.adminKey, body: #"{"at":"2026-10-02T05:00:00Z","gpus":9}"#).status
                    #expect(status == .created)
                }),
                ("new weights", {
                    let pool = fleet.pools.first { $0.name == "tok-custom" }!
                    var body = fleet.definition(pool)
                    body = body.replacingOccurrences(of: "\"output\":7.25", with: "\"output\":2")
                    let status = try await client.put("/v1/pools/tok-custom", key: t.adminKey, body: body).status
                    #expect(status.code < 300)
                }),
            ]
            for (what, change) in changes {
                try await change()
                let day = try await exact("tenant,day"), hour = try await exact("tenant,hour")
                #expect(day == hour, "after \(what)")
                #expect(day != previous, "\(what) moves the figures")
                previous = day
            }
        }
    }

    @Test func aRecordMayLeaveOutGPUSecondsOnlyOnATokensPool() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/tok", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand","usd_per_gpu_hour":"3.6","allocation":"tokens"}"#).status == .created)
            #expect(try await client.put("/v1/pools/gs", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand"}"#).status == .created)
            #expect(try await client.post("/v1/pools/tok/capacity", key: t.adminKey, body: #"{"at":"2026-10-01","gpus":2}"#).status == .created)
            for (pool, index) in [("\"gs\"", 1), (nil, 1)] as [(String?, Int)] {
                let bad = try await client.post("/v1/usage", key: t.adminKey,
                                                body: "[\(record("a")), \(record("b", ["gpu_seconds": nil, "pool": pool]))]")
                #expect(bad.status == .unprocessableContent, "\(bad.body)")
                #expect(bad.details.first?["field"] as? String == "gpu_seconds" && bad.details.first?["index"] as? Int == index, "\(bad.body)")
                #expect(try await storedCount(t) == 0)
            }
            let at = "2026-10-05T10:15:00Z"
            try await client.ingest([
                record("c", ["gpu_seconds": nil, "pool": "\"tok\"", "started_at": "\"\(at)\"", "input_tokens": "1000", "output_tokens": "250"]),
                record("d", tenant: "globex", ["gpu_seconds": "9.5", "pool": "\"tok\"", "started_at": "\"\(at)\"", "input_tokens": "3000",
                                               "cached_input_tokens": "2000", "output_tokens": "0"]),
            ], key: t.adminKey)
            // weights 1, 0.1, 4: c weighs 1000 + 1000 = 2000, d weighs 1000 + 200 = 1200; the hour pays 2 × 3.6.
            let c = try await client.get("/v1/usage/acme/c", key: t.acmeTenantKey)
            #expect(c.status == .ok, "\(c.body)")
            #expect(c.json["gpu_seconds"] is NSNull)
            #expect(c.json["allocation"] as? String == "tokens")
            #expect(c.json["cost_usd"] as? String == "4.500000000000")
            let d = try await client.get("/v1/usage/globex/d", key: t.adminKey).json
            #expect(d["gpu_seconds"] as? Double == 9.5)
            #expect(d["cost_usd"] as? String == "2.700000000000")
            // FOCUS: the tenant's usage in the pool is a token-share line, priced in the GPU-hours
            // its share pays for (0.625 of 2) and consuming tokens.
            let focus = CSVRows.parse(try await client.get("/v1/chargeback?period=2026-10&format=focus&tenant=acme", key: t.financeKey).body)
            let header = focus.first?.fields ?? []
            func col(_ row: CSVRows.Row, _ name: String) -> String? { header.firstIndex(of: name).map { row.fields[$0] } }
            let share = focus.dropFirst().filter { col($0, "x_ChargeType") == "token_share" }
            #expect(share.count == 1)
            if let line = share.first {
                #expect(col(line, "ConsumedQuantity") == "1250.0" && col(line, "ConsumedUnit") == "Tokens")
                #expect(col(line, "PricingQuantity") == "1.25" && col(line, "PricingUnit") == "GPU-Hours")
                #expect(col(line, "BilledCost") == "4.50")
            }
        }
    }

    @Test func switchingAPoolToTokensAndBackRepricesItsHistoryAndListsTheChange() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let base = #""accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand","usd_per_gpu_hour":"3.6""#
            #expect(try await client.put("/v1/pools/p", key: t.adminKey, body: "{\(base)}").status == .created)
            #expect(try await client.post("/v1/pools/p/capacity", key: t.adminKey, body: #"{"at":"2026-10-01","gpus":1}"#).status == .created)
            try await client.ingest([
                record("a", ["pool": "\"p\"", "started_at": "\"2026-10-02T10:00:00Z\"", "gpu_seconds": "360", "input_tokens": "100", "output_tokens": "0"]),
                record("b", tenant: "globex", ["pool": "\"p\"", "started_at": "\"2026-10-02T10:30:00Z\"", "gpu_seconds": "360",
                                               "input_tokens": "300", "output_tokens": "0"]),
            ], key: t.adminKey)
            func acme() async throws -> String {
                let bill = try await client.get("/v1/chargeback?period=2026-10&tenant=acme", key: t.financeKey).json
                return (bill["rows"] as? [[String: Any]])?.first?["total_cost_usd"] as? String ?? "?"
            }
            let byGPUSeconds = try await acme()
            let toTokens = try await client.put("/v1/pools/p", key: t.adminKey, body: "{\(base),\"allocation\":\"tokens\",\"token_weights\":{\"output\":4}}")
            #expect(toTokens.status == .ok, "\(toTokens.body)")
            // The hour pays 3.60; acme weighs 100 of 400.
            #expect(try await acme() == "0.90")
            #expect(byGPUSeconds != "0.90")
            #expect(try await client.put("/v1/pools/p", key: t.adminKey, body: "{\(base)}").status == .ok)
            #expect(try await acme() == byGPUSeconds)
            let changes = try await client.get("/v1/pools/p", key: t.adminKey).json["changes"] as? [[String: Any]] ?? []
            #expect(changes.map { "\($0["old_allocation"] ?? "") → \($0["new_allocation"] ?? "")" } == ["gpu_seconds → tokens", "tokens → gpu_seconds"])
            #expect(changes.first?["new_weights"] as? String == "input=1,cached_input=0.1,output=4")
        }
    }

    @Test func badTokenWeightsAreRefusedNamingEach() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let base = #""accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand","allocation":"tokens""#
            let cases: [(String, Set<String>)] = [
                (#"{"input":-1,"output":"4","speed":2}"#, ["token_weights.input", "token_weights.output", "token_weights.speed"]),
                (#"{"input":0,"cached_input":0,"output":0}"#, ["token_weights"]),
                (#"[1,2]"#, ["token_weights"]),
                (#"{"output":true}"#, ["token_weights.output"]),
            ]
            for (weights, fields) in cases {
                let answer = try await client.put("/v1/pools/p", key: t.adminKey, body: "{\(base),\"token_weights\":\(weights)}")
                #expect(answer.status == .unprocessableContent, "\(weights): \(answer.body)")
                #expect(Set(answer.details.compactMap { $0["field"] as? String }) == fields, "\(weights): \(answer.body)")
            }
            let badAllocation = try await client.put("/v1/pools/p", key: t.adminKey, body: #"{"accelerator":"H100","provider":"aws","region":"r","tier":"spot","allocation":"requests"}"#)
            #expect(badAllocation.status == .unprocessableContent && badAllocation.details.first?["field"] as? String == "allocation")
            #expect(try await client.get("/v1/pools/p", key: t.adminKey).status == .notFound)
        }
    }

    @Test func theWeightFitRecoversTheWeightsThatMadeTheGPUSeconds() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/m", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand","allocation":"tokens"}"#).status == .created)
            // GPU-seconds made as 0.002 per uncached input, 0.0002 per cached, 0.01 per output token.
            var rng = SplitMix(seed: 11)
            var records: [String] = []
            for i in 0..<120 {
                let input = Int64(rng.next() % 4000) + 100, cached = Int64(rng.next() % 100), output = Int64(rng.next() % 800)
                let gs = Decimal(2 * (input - cached) + 10 * output) / 1000 + Decimal(cached) / 5000
                let hour = Timestamp.parseRFC3339("2026-10-01T00:00:00Z")!.adding(hours: Int64(i % 40)).adding(seconds: Int64(i))
                records.append(record("w\(i)", ["pool": "\"m\"", "started_at": "\"\(hour.rfc3339)\"", "gpu_seconds": "\(gs)",
                                                "input_tokens": "\(input)", "cached_input_tokens": "\(cached)", "output_tokens": "\(output)"]))
            }
            try await client.ingest(records, key: t.adminKey)
            let fit = try await client.get("/v1/pools/m/token-weights?from=2026-10-01&to=2026-11-01", key: t.financeKey)
            #expect(fit.status == .ok, "\(fit.body)")
            #expect(fit.json["hours"] as? Int == 40)
            #expect((fit.json["r_squared"] as? Double ?? 0) > 0.999)
            let w = fit.json["token_weights"] as? [String: Double] ?? [:]
            #expect(abs((w["input"] ?? 0) - 1) < 1e-6 && abs((w["output"] ?? 0) - 5) < 1e-3 && abs((w["cached_input"] ?? 0) - 0.1) < 1e-2, "\(w)")
            #expect(try await client.get("/v1/pools/m/token-weights", key: t.acmeTenantKey).status == .forbidden)
            #expect(try await client.get("/v1/pools/none/token-weights", key: t.adminKey).status == .notFound)
        }
    }

    @Test func theCapacityPlannerSeesATokensPoolsDemandThroughItsWeights() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/tp", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand","usd_per_gpu_hour":"2","allocation":"tokens"}"#).status == .created)
            #expect(try await client.post("/v1/pools/tp/capacity", key: t.adminKey, body: #"{"at":"2026-09-01","gpus":4}"#).status == .created)
            // No record measures GPU-seconds; the hours' weights vary, the busiest is 4 GPUs flat out.
            let start = Timestamp.parseRFC3339("2026-10-01T00:00:00Z")!
            let records = (0..<(28 * 24)).map { i in
                record("h\(i)", ["pool": "\"tp\"", "gpu_seconds": nil, "started_at": "\"\(start.adding(hours: Int64(i)).rfc3339)\"",
                                  "input_tokens": "0", "output_tokens": "\(100 + (i * 37) % 400)"])
            }
            for chunk in stride(from: 0, to: records.count, by: 200).map({ Array(records[$0..<min($0 + 200, records.count)]) }) {
                try await client.ingest(chunk, key: t.adminKey)
            }
            let plan = try await client.get("/v1/forecast/capacity?pool=tp&as_of=2026-10-29&horizon_days=7", key: t.financeKey)
            #expect(plan.status == .ok, "\(plan.body)")
            #expect(abs((plan.json["peak_busy_gpus"] as? Double ?? 0) - 4) < 0.001, "\(plan.body)")
            #expect((plan.json["required_gpus"] as? Int ?? 0) >= 4)
        }
    }
}
