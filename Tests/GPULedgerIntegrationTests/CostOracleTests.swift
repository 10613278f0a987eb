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

/// An independent oracle: plain arithmetic over the generated records, rates, pools and capacity,
/// written apart from the SQL, checked against `/v1/costs` and `/v1/chargeback` on random fleets.
@Suite struct CostOracleTests {
    static let posix = Locale(identifier: "en_US_POSIX")
    static func dec(_ s: String) -> Decimal { Decimal(string: s, locale: posix)! }
    static func time(_ s: String) -> Int64 { Timestamp.parseDateOrTime(s)!.microseconds }
    static let hourUS: Int64 = 3_600_000_000

    struct RateRow { var key: String; var from: Int64; var price: Decimal }
    struct PoolDef { var name, accelerator, key: String; var override: Decimal? }
    struct Rec { var id, tenant, model, accelerator: String; var pool: String?; var at: Int64; var gs: Decimal; var input, output: Int64; var error: Bool; var team: String? }

    /// A random fleet for October 2026: rates that change mid-month on whole hours, L4 priced only
    /// from the 12th, three pools (one with an override), capacity events at odd times,
    /// records in and around the month, on registered, unregistered and no pools, with labels.
    struct Fleet {
        var rates: [RateRow] = []
        var defaults: [String: String] = ["H100": "acme-cloud|r1|H100|on_demand", "A100": "acme-cloud|r1|A100|on_demand", "L4": "acme-cloud|r1|L4|on_demand"]
        var pools: [PoolDef] = []
        var capacity: [String: [(Int64, Int)]] = [:]
        var records: [Rec] = []

        init(seed: UInt64) {
            var rng = SplitMix(seed: seed)
            func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
            func midMonthHour() -> Int64 { time("2026-10-02") + Int64(rng.next() % (27 * 24)) * hourUS }
            rates = [
                RateRow(key: "acme-cloud|r1|H100|on_demand", from: time("2026-09-01"), price: dec("3.60")),
                RateRow(key: "acme-cloud|r1|H100|on_demand", from: midMonthHour(), price: dec("4.1075")),
                RateRow(key: "acme-cloud|r1|H100|reserved", from: time("2026-09-01"), price: dec("1.75")),
                RateRow(key: "acme-cloud|r1|H100|reserved", from: midMonthHour(), price: dec("1.9")),
                RateRow(key: "acme-cloud|r1|A100|on_demand", from: time("2026-09-01"), price: dec("2.2125")),
                RateRow(key: "acme-cloud|r1|L4|on_demand", from: time("2026-10-12T06:00:00Z"), price: dec("0.8")),
            ]
            pools = [
                PoolDef(name: "p-res", accelerator: "H100", key: "acme-cloud|r1|H100|reserved", override: nil),
                PoolDef(name: "p-od", accelerator: "H100", key: "acme-cloud|r1|H100|on_demand", override: nil),
                PoolDef(name: "p-a100", accelerator: "A100", key: "acme-cloud|r1|A100|on_demand", override: dec("1.337")),
            ]
            for pool in pools {
                var events: [(Int64, Int)] = []
                for _ in 0..<(1 + rng.next() % 3) {
                    let at = time("2026-09-28") + Int64(rng.next() % (35 * 86_400)) * 1_000_000 + Int64(rng.next() % 1_000_000)
                    if !events.contains(where: { $0.0 == at }) { events.append((at, Int(rng.next() % 4))) }
                }
                capacity[pool.name] = events.sorted { $0.0 < $1.0 }
            }
            let tenants = ["acme", "globex", "initech", "umbrella"]
            let models = ["llama-3.1-70b", "mistral-7b", "qwen2.5-72b"]
            for i in 0..<300 {
                let placement = pick(["p-res", "p-od", "p-a100", "p-ghost", "none", "none", "p-res"])
                var accelerator = pools.first { $0.name == placement }?.accelerator ?? pick(["H100", "A100", "L4"])
                if rng.next() % 10 == 0 { accelerator = pick(["H100", "A100", "L4"]) } // sometimes not the pool's
                // Mostly October; some records just outside it.
                let at = time("2026-09-30T22:00:00Z") + Int64(rng.next() % UInt64(32 * 86_400)) * 1_000_000 + Int64(rng.next() % 1_000_000)
                let gs = Decimal(Int(rng.next() % 6_000_000)) / 1000
                records.append(Rec(id: "r\(i)", tenant: pick(tenants), model: pick(models), accelerator: accelerator,
                                   pool: placement == "none" ? nil : placement, at: at, gs: rng.next() % 20 == 0 ? 0 : gs,
                                   input: Int64(rng.next() % 5000), output: Int64(rng.next() % 900), error: rng.next() % 10 == 0,
                                   team: rng.next() % 3 == 0 ? nil : pick(["search", "chat"])))
            }
        }

        func price(_ key: String, at t: Int64) -> Decimal? {
            rates.filter { $0.key == key && $0.from <= t }.max { $0.from < $1.from }?.price
        }

        /// (in a registered pool, rate) for a record, by the rule in the contract.
        func rate(_ r: Rec) -> (String?, Decimal?) {
            if let p = pools.first(where: { $0.name == r.pool && $0.accelerator == r.accelerator }) {
                return (p.name, p.override ?? price(p.key, at: r.at))
            }
            return (nil, defaults[r.accelerator].flatMap { price($0, at: r.at) })
        }

        var cardFiles: [String: String] {
            var rows = ""
            for r in rates {
                let k = r.key.split(separator: "|")
                rows += "\(k[0]),\(k[1]),\(k[2]),\(k[3]),\(r.price),\(Timestamp(microseconds: r.from).rfc3339),generated\n"
            }
            return ["cloud.csv": rows]
        }

        var defaultsFile: String {
            defaults.sorted { $0.key < $1.key }.map { a, k in
                let p = k.split(separator: "|"); return "\(a),\(p[0]),\(p[1]),\(p[3])\n"
            }.joined()
        }

        func json(_ r: Rec) -> String {
            var s = "{\"request_id\":\"\(r.id)\",\"tenant\":\"\(r.tenant)\",\"model\":\"\(r.model)\",\"accelerator\":\"\(r.accelerator)\","
            if let p = r.pool { s += "\"pool\":\"\(p)\"," }
            s += "\"started_at\":\"\(Timestamp(microseconds: r.at).rfc3339)\",\"gpu_seconds\":\(r.gs),\"input_tokens\":\(r.input),\"output_tokens\":\(r.output)"
            if r.error { s += ",\"status\":\"error\",\"error_type\":\"timeout\"" }
            if let team = r.team { s += ",\"labels\":{\"team\":\"\(team)\"}" }
            return s + "}"
        }
    }

    // MARK: - The oracle's arithmetic

    static func fixed(_ d: Decimal, _ places: Int) -> String {
        var v = d, out = Decimal()
        NSDecimalRound(&out, &v, places, .plain)
        var s = "\(out)"
        if !s.contains(".") { s += "." }
        let have = s.count - 1 - s.distance(from: s.startIndex, to: s.firstIndex(of: ".")!)
        return s + String(repeating: "0", count: places - have)
    }

    /// The CSV row the oracle expects for a group of records.
    static func costLine(_ group: [String], _ recs: [Rec], _ fleet: Fleet) -> String {
        var n = Decimal(0), unpriced = Decimal(0), gs = Decimal(0)
        var priced: Int64 = 0, pricedTokens: Int64 = 0, input: Int64 = 0, output: Int64 = 0
        for r in recs {
            gs += r.gs; input += r.input; output += r.output
            if let rate = fleet.rate(r).1 { n += r.gs * rate; priced += 1; pricedTokens += r.input + r.output } else { unpriced += r.gs }
        }
        let perRequest = priced > 0 ? fixed(n / Decimal(3600 * priced), 12) : ""
        let perM = pricedTokens > 0 ? fixed(n * 1_000_000 / Decimal(3600 * pricedTokens), 12) : ""
        return (group + ["\(recs.count)", "\(recs.filter(\.error).count)", "\(gs)", "\(input)", "\(output)", fixed(n / 3600, 12),
                         perRequest, perM, "\(unpriced)"]).joined(separator: "|")
    }

    static func expectedCosts(_ fleet: Fleet, from: Int64, to: Int64, _ key: (Rec) -> [String]) -> [String] {
        let inRange = fleet.records.filter { $0.at >= from && $0.at < to }
        let groups = Dictionary(grouping: inRange, by: key)
        // As the service sorts: byte-wise, a missing value ("") last.
        return groups.keys.sorted { $0.lexicographicallyPrecedes($1) { a, b in a.isEmpty != b.isEmpty ? b.isEmpty : a < b } }
            .map { costLine($0, groups[$0]!, fleet) }
    }

    static func day(_ t: Int64) -> String { String(Timestamp(microseconds: t).rfc3339.prefix(10)) }

    /// Hamilton apportionment of exact amounts to `target` cents, independent of the service's.
    static func apportion(_ xs: [Decimal], to target: Decimal) -> [Decimal] {
        let cents = xs.map { x -> Decimal in var v = x * 100, o = Decimal(); NSDecimalRound(&o, &v, 0, .down); return o }
        var t = target * 100, tc = Decimal(); NSDecimalRound(&tc, &t, 0, .plain)
        var missing = NSDecimalNumber(decimal: tc - cents.reduce(0, +)).intValue
        var result = cents
        let order = xs.indices.sorted { a, b in
            let ra = xs[a] * 100 - cents[a], rb = xs[b] * 100 - cents[b]
            return ra != rb ? ra > rb : (xs[a] != xs[b] ? xs[a] > xs[b] : a < b)
        }
        var i = 0
        while missing > 0 { result[order[i % order.count]] += 1; missing -= 1; i += 1 }
        var j = order.count - 1
        while missing < 0, j >= 0 { if result[order[j]] > 0 { result[order[j]] -= 1; missing += 1 }; j -= 1 }
        return result.map { $0 / 100 }
    }

    /// The chargeback the oracle expects: "tenant usage idle total" lines and fleet figures.
    static func expectedChargeback(_ fleet: Fleet) -> (rows: [String], fleet: [String: String]) {
        let start = time("2026-10-01"), end = time("2026-11-01")
        let recs = fleet.records.filter { $0.at >= start && $0.at < end }
        var usage: [String: Decimal] = [:], idle: [String: Decimal] = [:]
        var unallocated = Decimal(0), provisioned = Decimal(0)
        for r in recs {
            if let rate = fleet.rate(r).1 { usage[r.tenant, default: 0] += r.gs * rate / 3600 } else { usage[r.tenant, default: 0] += 0 }
        }
        for pool in fleet.pools {
            let events = fleet.capacity[pool.name] ?? []
            var hour = start
            while hour < end {
                var prov = Decimal(0)
                for (i, e) in events.enumerated() {
                    let s = max(e.0, hour), f = min(i + 1 < events.count ? events[i + 1].0 : Int64.max, hour + hourUS)
                    if f > s { prov += Decimal(e.1) * Decimal(f - s) / 1_000_000 }
                }
                let rate = pool.override ?? fleet.price(pool.key, at: hour)!
                var used: [String: Decimal] = [:]
                for r in recs where r.at >= hour && r.at < hour + hourUS && fleet.rate(r).0 == pool.name { used[r.tenant, default: 0] += r.gs }
                let total = used.values.reduce(0, +)
                provisioned += prov * rate / 3600
                let idleCost = max(prov - total, 0) * rate / 3600
                if total > 0 {
                    for (t, u) in used { idle[t, default: 0] += idleCost * u / total }
                } else {
                    unallocated += idleCost
                }
                hour += hourUS
            }
        }
        let tenants = Set(recs.map(\.tenant)).sorted()
        let u = tenants.map { usage[$0] ?? 0 }, i = tenants.map { idle[$0] ?? 0 }
        let usageTotal = u.reduce(0, +)
        let paid = usageTotal + i.reduce(0, +) + unallocated
        let cents = { (d: Decimal) -> Decimal in var v = d, o = Decimal(); NSDecimalRound(&o, &v, 2, .plain); return o }
        let usageCents = apportion(u, to: cents(usageTotal))
        let idleCents = apportion(i + [unallocated], to: cents(paid) - cents(usageTotal))
        let rows = tenants.indices.map { k in
            "\(tenants[k]) \(fixed(usageCents[k], 2)) \(fixed(idleCents[k], 2)) \(fixed(usageCents[k] + idleCents[k], 2))"
        }
        return (rows, ["provisioned_cost_usd": fixed(provisioned, 2), "usage_cost_usd": fixed(cents(usageTotal), 2),
                       "idle_cost_usd": fixed(cents(paid) - cents(usageTotal), 2), "unallocated_idle_cost_usd": fixed(idleCents.last!, 2),
                       "total_cost_usd": fixed(cents(paid), 2)])
    }

    // MARK: - The checks

    static func costsCSV(_ client: some TestClientProtocol, _ key: String, _ query: String, groups: Int) async throws -> [String] {
        let answer = try await client.get("/v1/costs?format=csv&" + query, key: key)
        #expect(answer.status == .ok, "\(query): \(answer.body)")
        let lines = CSVRows.parse(answer.body)
        return lines.dropFirst().map { $0.fields.joined(separator: "|") }
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func costsAndChargebackAgreeWithTheOracle(seed: UInt64) async throws {
        let fleet = Fleet(seed: seed)
        let dir = try pricingFolder(fleet.cardFiles, defaults: fleet.defaultsFile)
        let t = try await TestApp.make { $0.pricingDirectory = dir }
        try await t.application().test(.router) { client in
            for p in fleet.pools {
                let k = p.key.split(separator: "|")
                let override = p.override.map { ",\"usd_per_gpu_hour\":\"\($0)\"" } ?? ""
                let answer = try await client.put("/v1/pools/\(p.name)", key: t.adminKey,
                                                  body: "{\"accelerator\":\"\(p.accelerator)\",\"provider\":\"\(k[0])\",\"region\":\"\(k[1])\",\"tier\":\"\(k[3])\"\(override)}")
                #expect(answer.status == .created, "\(answer.body)")
                for (at, gpus) in (fleet.capacity[p.name] ?? []).dropLast(p.name == "p-od" ? 1 : 0) {
                    let c = try await client.post("/v1/pools/\(p.name)/capacity", key: t.adminKey,
                                                  body: "{\"at\":\"\(Timestamp(microseconds: at).rfc3339)\",\"gpus\":\(gpus)}")
                    #expect(c.status == .created, "\(c.body)")
                }
            }
            // In three batches, so that the summaries add to rows they already have; a chargeback
            // after the first two fills the idle cache, which the last batch and a held-back
            // capacity event must invalidate.
            let chunks = stride(from: 0, to: fleet.records.count, by: 100).map { Array(fleet.records[$0..<min($0 + 100, fleet.records.count)]) }
            for chunk in chunks.dropLast() { try await client.ingest(chunk.map(fleet.json), key: t.ingestKey) }
            #expect(try await client.get("/v1/chargeback?period=2026-10", key: t.financeKey).status == .ok)
            try await client.ingest(chunks.last!.map(fleet.json), key: t.ingestKey)
            if let (at, gpus) = fleet.capacity["p-od"]?.last {
                #expect(try await client.post("/v1/pools/p-od/capacity", key: t.adminKey,
                                              body: "{\"at\":\"\(Timestamp(microseconds: at).rfc3339)\",\"gpus\":\(gpus)}").status == .created)
            }

            let oct = (Self.time("2026-10-01"), Self.time("2026-11-01"))
            #expect(try await Self.costsCSV(client, t.financeKey, "from=2026-10-01&to=2026-11-01&group_by=tenant,day", groups: 2)
                    == Self.expectedCosts(fleet, from: oct.0, to: oct.1) { [$0.tenant, Self.day($0.at)] })
            #expect(try await Self.costsCSV(client, t.financeKey, "from=2026-10-01&to=2026-11-01&group_by=model,accelerator", groups: 2)
                    == Self.expectedCosts(fleet, from: oct.0, to: oct.1) { [$0.model, $0.accelerator] })
            // Partial hours at both ends (raw records) and whole hours between (the rollup).
            let from = "2026-10-03T10:17:00.5Z", to = "2026-10-20T05:00:00.25Z"
            #expect(try await Self.costsCSV(client, t.financeKey, "from=\(from)&to=\(to)&group_by=pool,month", groups: 2)
                    == Self.expectedCosts(fleet, from: Self.time(from), to: Self.time(to)) { [$0.pool ?? "", "2026-10"] })
            // Labels come from the raw records; a record without the label groups under null.
            #expect(try await Self.costsCSV(client, t.financeKey, "from=2026-09-01&to=2026-12-01&group_by=label:team,accelerator&tenant=acme", groups: 2)
                    == Self.expectedCosts(fleet, from: Self.time("2026-09-01"), to: Self.time("2026-12-01")) { $0.tenant == "acme" ? [$0.team ?? "", $0.accelerator] : ["~skip"] }
                        .filter { !$0.hasPrefix("~skip") })
            #expect(try await Self.costsCSV(client, t.financeKey, "from=2026-10-01&to=2026-11-01&group_by=hour&pool=p-res", groups: 1)
                    == Self.expectedCosts(fleet, from: oct.0, to: oct.1) {
                        $0.pool == "p-res" ? [String(Timestamp(microseconds: $0.at - $0.at % Self.hourUS).rfc3339)] : ["~skip"]
                    }.filter { !$0.hasPrefix("~skip") })

            let expected = Self.expectedChargeback(fleet)
            for attempt in ["recomputed", "from the cache"] {
                let bill = try await client.get("/v1/chargeback?period=2026-10", key: t.financeKey).json
                let rows = (bill["rows"] as? [[String: Any]] ?? []).map {
                    "\($0["tenant"] as? String ?? "") \($0["usage_cost_usd"] as? String ?? "") \($0["idle_cost_usd"] as? String ?? "") \($0["total_cost_usd"] as? String ?? "")"
                }
                #expect(rows == expected.rows, "\(attempt)")
                let fleetAnswer = bill["fleet"] as? [String: Any] ?? [:]
                for (field, value) in expected.fleet { #expect(fleetAnswer[field] as? String == value, "\(field), \(attempt)") }
            }

            // One tenant's chargeback is computed from its own items and the other tenants' sums
            // (CostStore.BillDetail): the same row, fleet and FOCUS lines as the whole bill's.
            let whole = try await client.get("/v1/chargeback?period=2026-10", key: t.financeKey).json
            let wholeRows = whole["rows"] as? [[String: Any]] ?? []
            let wholeFOCUS = CSVRows.parse(try await client.get("/v1/chargeback?period=2026-10&format=focus", key: t.financeKey).body).map(\.fields)
            let account = wholeFOCUS.first?.firstIndex(of: "SubAccountId") ?? -1
            #expect(account >= 0 && wholeRows.count == expected.rows.count)
            for row in wholeRows {
                let tenant = row["tenant"] as? String ?? ""
                let one = try await client.get("/v1/chargeback?period=2026-10&tenant=\(tenant)", key: t.financeKey).json
                let oneRows = one["rows"] as? [[String: Any]] ?? []
                #expect(oneRows.count == 1 && NSDictionary(dictionary: oneRows.first ?? [:]).isEqual(to: row), "\(tenant): \(oneRows) against \(row)")
                #expect(NSDictionary(dictionary: one["fleet"] as? [String: Any] ?? [:]).isEqual(to: whole["fleet"] as? [String: Any] ?? [:]), "\(tenant)")
                let oneFOCUS = CSVRows.parse(try await client.get("/v1/chargeback?period=2026-10&tenant=\(tenant)&format=focus", key: t.financeKey).body).map(\.fields)
                let mine = wholeFOCUS.dropFirst().filter { account >= 0 && $0[account] == tenant }
                #expect(!mine.isEmpty && oneFOCUS.dropFirst().elementsEqual(mine), "\(tenant): \(oneFOCUS.count - 1) FOCUS lines against \(mine.count)")
            }
        }
    }
}
