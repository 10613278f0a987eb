// The /metrics benchmark: not a test. It prints figures.
//
//   swift build -c release && .build/release/gpuledger-bench-metrics [--tenants 1000] [--records 200000] [--runs 50]
//
// Starts the release `gpuledger serve` (label cap at the tenant count, so every tenant has its own
// series) on its embedded PostgreSQL in a temporary folder, with a rate, 20 pools with capacity
// and one budget per tenant; posts usage for every tenant over HTTP (each tenant on 3 of 12
// models, each model on its own accelerator); waits until the budget gauges are computed; then
// times GET /metrics (p50/p95 over --runs scrapes) and prints the size of the scrape and its
// series count.
import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
import GPULedgerCore
import GPULedgerTestSupport

checkArguments(program: "gpuledger-bench-metrics", source: "Benchmarks/MetricsBenchmark/main.swift",
               values: ["--tenants", "--records", "--runs", "--binary"])

func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

let tenants = option("--tenants", 1000)
let total = option("--records", 200_000)
let runs = option("--runs", 50)
let binary = stringOption("--binary", ".build/release/gpuledger")

// 1. In process: what the usage series cost per ingested record (AppMetrics.usage on parsed
//    batches of 10,000 realistic records, rates from a price book like the service's).
do {
    let body = Array(SampleRecords.ndjson(0..<200_000).utf8)
    let batch = try RecordParser(now: WallClock.system.now()).parse(body, format: .ndjson)
    var rates: [PriceBook.Key: [(from: Int64, usd: Double)]] = [:]
    var defaults: [String: PriceBook.Key] = [:]
    for a in Set(batch.records.map(\.accelerator)) {
        let key = PriceBook.Key(provider: "bench", region: "r1", accelerator: a, tier: "on_demand")
        rates[key] = [(0, 2.5), (1_790_000_000_000_000, 2.0)]
        defaults[a] = key
    }
    let chunks = stride(from: 0, to: batch.records.count, by: 10_000).map { Array(batch.records[$0..<min($0 + 10_000, batch.records.count)]) }
    for (cap, label) in [(200, "label cap 200"), (100_000, "no label cap")] {
        let metrics = AppMetrics(labelCap: cap)
        metrics.setPriceBook(PriceBook(rates: rates, defaults: defaults))
        var times: [Double] = []
        var first = 0.0
        for round in 0..<8 {
            let start = ContinuousClock.now
            for chunk in chunks { metrics.usage(chunk) }
            let ms = milliseconds(ContinuousClock.now - start)
            if round > 0 { times.append(ms * 1e6 / Double(batch.records.count)) } else { first = ms }
        }
        say(String(format: "usage series in process (%@): %.0f ns per record; the first pass, which makes the series, %.0f ms",
                   label, times.min()!, first))
    }
}

let service = try await BenchmarkService(name: "metrics", binary: binary,
                                         arguments: ["--metrics-label-cap", "\(tenants)", "--budget-gauge-interval", "20"])
await service.sql("""
    INSERT INTO rates (provider, region, accelerator, tier, effective_from, usd_per_gpu_hour, source, card)
    SELECT 'bench', 'r1', 'GPU-' || a, 'on_demand', '2020-01-01', 1 + a * 0.5, 'bench', 'bench.csv' FROM generate_series(0, 3) a
    """)
await service.sql("INSERT INTO default_rates SELECT 'GPU-' || a, 'bench', 'r1', 'on_demand' FROM generate_series(0, 3) a")
await service.sql("""
    INSERT INTO pools (name, accelerator, provider, region, tier)
    SELECT 'pool-' || p, 'GPU-' || (p % 4), 'bench', 'r1', 'on_demand' FROM generate_series(0, 19) p
    """)
await service.sql("INSERT INTO pool_capacity (pool, at, gpus) SELECT 'pool-' || p, '2020-01-01', 8 FROM generate_series(0, 19) p")
await service.sql("""
    INSERT INTO budgets (name, tenant, period, amount_usd, thresholds, basis)
    SELECT 't-' || lpad(t::text, 4, '0'), 't-' || lpad(t::text, 4, '0'), 'monthly', 50 + t, '{0.5,0.8,1.0}'::numeric[], 'usage'
    FROM generate_series(0, \(tenants - 1)) t
    """)

say("posting \(total) records for \(tenants) tenants…")
let now = WallClock.system.now().microseconds
var rng = SplitMix(seed: 42)
var lines: [String] = []
for i in 0..<total {
    let t = i % tenants
    let m = (t + (i / tenants) % 3) % 12
    let at = Timestamp(microseconds: now - Int64(rng.next() % 86_400_000_000))
    lines.append("""
        {"request_id":"m\(i)","tenant":"t-\(String(format: "%04d", t))","model":"model-\(m)","accelerator":"GPU-\(m % 4)","pool":"pool-\(m % 20)",\
        "started_at":"\(at.rfc3339)","gpu_seconds":\(Double(rng.next() % 5000) / 1000),"input_tokens":\(rng.next() % 4000),"output_tokens":\(rng.next() % 800),\
        "ttft_ms":\(rng.next() % 3000),"tpot_ms":\(Double(rng.next() % 10000) / 100),"e2e_ms":\(rng.next() % 60000)}
        """)
    if lines.count == 10_000 || i == total - 1 {
        guard let (status, body) = await httpStatus(service.base + "/v1/usage", method: "POST", key: service.key,
                                                    body: lines.joined(separator: "\n"), contentType: "application/x-ndjson"), status == 200 else {
            await service.fail("ingest failed")
        }
        _ = body
        lines.removeAll(keepingCapacity: true)
    }
}

say("waiting for the budget gauges…")
var scrape = ""
try await waitUntil(timeout: .seconds(600), "the budget gauges") {
    scrape = await httpStatus(service.base + "/metrics")?.1 ?? ""
    return scrape.split(separator: "\n").filter { $0.hasPrefix("gpuledger_budget_amount_usd{") }.count == tenants
}
let seriesLines = scrape.split(separator: "\n").filter { !$0.hasPrefix("#") }
let tenantValues = Set(seriesLines.compactMap { line -> Substring? in
    guard let r = line.range(of: "tenant=\"") else { return nil }
    return line[r.upperBound...].prefix { $0 != "\"" }
})
say("scrape: \(scrape.utf8.count / 1024) KiB, \(seriesLines.count) series, \(tenantValues.count) tenant label values")
let t = try await timed(runs) {
    guard let (status, _) = await httpStatus(service.base + "/metrics"), status == 200 else { await service.fail("scrape failed") }
}
say(String(format: "GET /metrics with %d tenants: p50 %.1f ms, p95 %.1f ms (%d scrapes)", tenants, t.p50, t.p95, runs))
await service.stop(keep: false)
