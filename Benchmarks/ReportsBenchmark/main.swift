// The reports benchmark: not a test. It prints figures.
//
//   swift build -c release && .build/release/gpuledger-bench-reports [--records 10000000] [--runs 20]
//
// 1. Starts the release `gpuledger serve` on its embedded PostgreSQL in a temporary folder and
//    loads N realistic records over the 30 days from 2026-10-01 straight into PostgreSQL (not over
//    HTTP), through the same triggers that keep the rollup during ingest: tenants skewed (a few
//    large, many small), 8 models each on its pool and accelerator (one on no pool), hours shaped
//    by ServeGen's hourly request counts, input/output tokens from the Azure 2023 traces
//    (../shared/data/traces, CC-BY-4.0), GPU-seconds from tokens by model size, 1% errors, a team
//    label on most. Pools have capacity that grows mid-month; rates change on 2026-10-15.
// 2. While a background client keeps ingesting over HTTP, times `runs` requests of each report:
//    a month's /v1/chargeback, /v1/costs by tenant and day, /v1/costs by model and accelerator,
//    over HTTP (the whole service) and in process from the store; then the same reports from
//    the raw records only (no rollup), and prints p50/p95 and the ratio.
// 3. Freshness: a record just acknowledged is in the next report (checked, not timed).
import Foundation
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import Logging
import PostgresNIO
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Prints a line at once (stdout to a pipe is block-buffered).
func print(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

let total = option("--records", 10_000_000)
let runs = option("--runs", 20)
let binary = stringOption("--binary", ".build/release/gpuledger")
let traces = stringOption("--traces", "../shared/data/traces")
/// Records per second the background client posts while reports are timed (0: none).
let liveRate = option("--ingest-rate", 1000)
func ms(_ d: Duration) -> Double { milliseconds(d) }

/// --keep: leave the service and its data running after the figures, for EXPLAIN ANALYZE.
let keep = CommandLine.arguments.contains("--keep")
let service = try await BenchmarkService(name: "reports", binary: binary)
let dir = service.dir, base = service.base, key = service.key, db = service.db, logger = service.logger

func fail(_ message: String) async -> Never { await service.fail(message) }
func sql(_ text: String) async { await service.sql(text) }

// --- 1. Data ---------------------------------------------------------------------------------

/// Token pairs from the Azure traces; hourly weights from ServeGen (hour index mod its 336 hours).
func csvColumns(_ path: String, _ names: [String]) throws -> [[String]] {
    let rows = CSVRows.parse(try String(contentsOfFile: path, encoding: .utf8))
    guard let header = rows.first?.fields else { return [] }
    let idx = names.map { header.firstIndex(of: $0)! }
    return rows.dropFirst().map { r in idx.map { r.fields[$0] } }
}
var tokens: [(Int, Int)] = []
for f in ["azure_llm_2023_conv.csv", "azure_llm_2023_code.csv"] {
    for r in try csvColumns(traces + "/" + f, ["input_tokens", "output_tokens"]) { tokens.append((Int(r[0])!, Int(r[1])!)) }
}
var hourly = [Double](repeating: 0, count: 336)
for r in try csvColumns(traces + "/servegen_hourly.csv", ["model", "hour", "requests"]) where r[0].hasPrefix("m-") {
    if let h = Int(r[1]), h < 336 { hourly[h] += Double(r[2])! }
}
let hours = 30 * 24
let weights = (0..<hours).map { hourly[$0 % 336] }
let weightSum = weights.reduce(0, +)
var perHour = weights.map { Int(Double(total) * $0 / weightSum) }
perHour[0] += total - perHour.reduce(0, +)
print("data: \(tokens.count) token pairs (Azure 2023), hourly shape from ServeGen (peak/trough \(String(format: "%.1f", weights.max()! / weights.min()!))×)")

let start = Timestamp.parseRFC3339("2026-10-01T00:00:00Z")!
await sql("CREATE TEMPORARY TABLE IF NOT EXISTS x (a int)") // warm a connection
await sql("CREATE UNLOGGED TABLE bench_tokens (i int PRIMARY KEY, input_tokens int, output_tokens int)")
for chunk in stride(from: 0, to: tokens.count, by: 5000) {
    let values = tokens[chunk..<min(chunk + 5000, tokens.count)].enumerated().map { "(\(chunk + $0.offset), \($0.element.0), \($0.element.1))" }
    await sql("INSERT INTO bench_tokens VALUES " + values.joined(separator: ","))
}
await sql("CREATE UNLOGGED TABLE bench_hours (h int PRIMARY KEY, cnt int, first bigint)")
var first = 0
var hourValues: [String] = []
for h in 0..<hours { hourValues.append("(\(h), \(perHour[h]), \(first))"); first += perHour[h] }
await sql("INSERT INTO bench_hours VALUES " + hourValues.joined(separator: ","))
// model, accelerator, pool ('' none), GPU-seconds per input token and per output token
await sql("""
    CREATE UNLOGGED TABLE bench_models (m int PRIMARY KEY, model text, accelerator text, pool text, per_in numeric, per_out numeric);
    """)
await sql("""
    INSERT INTO bench_models VALUES
      (0, 'llama-3.1-8b', 'L4', 'l4-pool', 0.000004, 0.00012),
      (1, 'llama-3.1-70b', 'H100', 'h100-a', 0.00002, 0.0006),
      (2, 'llama-3.1-405b', 'H200', 'h200-a', 0.00006, 0.0018),
      (3, 'mistral-7b', 'A10G', 'a10g-pool', 0.000005, 0.00015),
      (4, 'mixtral-8x7b', 'A100-80GB', 'a100-pool', 0.000012, 0.0003),
      (5, 'qwen2.5-72b', 'H100', 'h100-b', 0.00002, 0.0006),
      (6, 'deepseek-v3', 'H200', 'h200-a', 0.00004, 0.0012),
      (7, 'gemma-2-27b', 'L40S', '', 0.00001, 0.0003)
    """)
// Rates: one bench key per accelerator, on demand and spot, each changed on 2026-10-15.
var rateRows: [String] = []
for (acc, od) in [("L4", "0.80"), ("H100", "3.93"), ("H200", "4.98"), ("A10G", "1.01"), ("A100-80GB", "2.56"), ("L40S", "1.86")] {
    rateRows.append("('bench', 'r1', '\(acc)', 'on_demand', '2026-09-01', \(od), 'bench', 'bench.csv')")
    rateRows.append("('bench', 'r1', '\(acc)', 'on_demand', '2026-10-15', round(\(od) * 1.08, 4), 'bench', 'bench.csv')")
    rateRows.append("('bench', 'r1', '\(acc)', 'spot', '2026-09-01', round(\(od) * 0.4, 4), 'bench', 'bench.csv')")
    rateRows.append("('bench', 'r1', '\(acc)', 'spot', '2026-10-15', round(\(od) * 0.45, 4), 'bench', 'bench.csv')")
}
await sql("INSERT INTO rates (provider, region, accelerator, tier, effective_from, usd_per_gpu_hour, source, card) VALUES " + rateRows.joined(separator: ","))
await sql("INSERT INTO default_rates SELECT DISTINCT accelerator, 'bench', 'r1', 'on_demand' FROM bench_models")
await sql("""
    INSERT INTO pools (name, accelerator, provider, region, tier) VALUES
      ('l4-pool', 'L4', 'bench', 'r1', 'on_demand'), ('h100-a', 'H100', 'bench', 'r1', 'on_demand'),
      ('h100-b', 'H100', 'bench', 'r1', 'spot'), ('h200-a', 'H200', 'bench', 'r1', 'on_demand'),
      ('a10g-pool', 'A10G', 'bench', 'r1', 'on_demand'), ('a100-pool', 'A100-80GB', 'bench', 'r1', 'on_demand')
    """)

print("loading \(total) records…")
let loadClock = ContinuousClock.now
let tokenCount = tokens.count
for day in 0..<30 {
    // One statement per day: records of its hours, attributes from hashes of the record number.
    await sql("""
        INSERT INTO usage_records (tenant, request_id, model, accelerator, pool, started_at, gpu_seconds, input_tokens, output_tokens,
                                   cached_input_tokens, ttft_ms, tpot_ms, e2e_ms, status, error_type, labels)
        SELECT 'tenant-' || lpad((floor(40 * power(u1, 2.2)))::int::text, 2, '0'),
               'r' || n, m.model, m.accelerator, nullif(m.pool, ''),
               TIMESTAMPTZ '\(start.rfc3339)' + (h.h * 3600 + u2 * 3600) * INTERVAL '1 second',
               round(t.input_tokens * m.per_in + t.output_tokens * m.per_out, 6), t.input_tokens, t.output_tokens,
               t.input_tokens / 3, 50 + u3 * 900, 10 + u4 * 40, 500 + u3 * 20000,
               CASE WHEN u4 < 0.01 THEN 'error' ELSE 'ok' END, CASE WHEN u4 < 0.01 THEN 'timeout' END,
               CASE WHEN u5 < 0.7 THEN jsonb_build_object('team', 'team-' || floor(u5 * 10)::int) END
        FROM bench_hours h
             CROSS JOIN LATERAL generate_series(h.first, h.first + h.cnt - 1) AS n
             CROSS JOIN LATERAL (SELECT (hashint8(n) & 2147483647) / 2147483648.0::float8 AS u1,
                                        (hashint8(n + 1000000007) & 2147483647) / 2147483648.0::float8 AS u2,
                                        (hashint8(n + 2000000011) & 2147483647) / 2147483648.0::float8 AS u3,
                                        (hashint8(n + 3000000019) & 2147483647) / 2147483648.0::float8 AS u4,
                                        (hashint8(n + 4000000007) & 2147483647) / 2147483648.0::float8 AS u5) AS u
             JOIN bench_models m ON m.m = (hashint8(n * 7) & 2147483647) % 8
             JOIN bench_tokens t ON t.i = (hashint8(n * 13) & 2147483647) % \(tokenCount)
        WHERE h.h >= \(day * 24) AND h.h < \(day * 24 + 24)
        """)
    if day % 5 == 4 { print("  day \(day + 1) of 30 loaded (\(String(format: "%.0f", ms(ContinuousClock.now - loadClock) / 1000)) s)") }
}
// The service folds the summary deltas every second; finish what the load left before measuring.
await sql("DO $$ BEGIN WHILE EXISTS (SELECT 1 FROM usage_delta) LOOP PERFORM usage_fold(); PERFORM pg_sleep(0.05); END LOOP; END $$")
// Capacity: sized from each pool's busiest hour (about 70% there), grown by a quarter mid-month.
await sql("""
    INSERT INTO pool_capacity (pool, at, gpus)
    SELECT pool, at, gpus FROM (
        SELECT pool, ceil(max(gs) / 3600 / 0.7 * 0.8)::int AS g FROM (
            SELECT pool, hour, sum(gpu_seconds) AS gs FROM usage_hourly WHERE pool <> '' GROUP BY 1, 2) x GROUP BY 1) p,
    LATERAL (VALUES (TIMESTAMPTZ '2026-09-25', g), (TIMESTAMPTZ '2026-10-16 09:30:00+00', ceil(g * 1.25)::int)) AS v(at, gpus)
    """)
await sql("VACUUM ANALYZE usage_records")
await sql("VACUUM ANALYZE usage_hourly")
await sql("VACUUM ANALYZE usage_daily")
await sql("VACUUM ANALYZE usage_daily_fleet")
await sql("VACUUM ANALYZE usage_delta")
let loadSeconds = ms(ContinuousClock.now - loadClock) / 1000
let sizes = try await db.withConnection { conn in
    var out = ""
    for try await (r, h, rs, hs) in try await conn.query("""
        SELECT (SELECT count(*) FROM usage_records), (SELECT count(*) FROM usage_hourly),
               pg_size_pretty(pg_total_relation_size('usage_records')), pg_size_pretty(pg_total_relation_size('usage_hourly'))
        """, logger: logger).decode((Int64, Int64, String, String).self) {
        out = "\(r) records (\(rs)), \(h) rollup rows (\(hs))"
    }
    return out
}
print(String(format: "loaded in %.0f s: ", loadSeconds) + sizes)

// --- 2. Timings ------------------------------------------------------------------------------

/// A background client posting batches of 1,000 records for October's last day over HTTP.
final class BackgroundIngest: @unchecked Sendable {
    let lock = NSLock()
    var stop = false
    var accepted = 0
    var batches = 0
    func finish() -> Int {
        lock.lock(); defer { lock.unlock() }
        stop = true
        return accepted
    }

    func run() {
        let post = postSync
        Thread {
            var i = 0
            while true {
                self.lock.lock(); let done = self.stop; self.lock.unlock()
                if done || liveRate <= 0 { break }
                let t0 = Date()
                let body = (0..<1000).map { k -> String in
                    let n = i * 1000 + k
                    return #"{"request_id":"live-\#(n)","tenant":"tenant-\#(String(format: "%02d", n % 40))","model":"llama-3.1-70b","accelerator":"H100","pool":"h100-a","started_at":"2026-10-31T\#(String(format: "%02d", (n / 60) % 24)):\#(String(format: "%02d", n % 60)):00Z","gpu_seconds":1.5,"input_tokens":900,"output_tokens":200}"#
                }.joined(separator: "\n")
                let n = post(base + "/v1/usage", body)
                self.lock.lock(); self.accepted += n; self.batches += 1; self.lock.unlock()
                i += 1
                // 1,000 records a batch: pace to the rate asked for.
                let due = 1000.0 / Double(liveRate) - Date().timeIntervalSince(t0)
                if due > 0 { Thread.sleep(forTimeInterval: due) }
            }
        }.start()
    }
}

@Sendable func postSync(_ url: String, body: String) -> Int {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
    request.setValue("application/x-ndjson", forHTTPHeaderField: "Content-Type")
    request.httpBody = Data(body.utf8)
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var accepted = 0
    URLSession.shared.dataTask(with: request) { data, _, _ in
        if let data, let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] { accepted = o["accepted"] as? Int ?? 0 }
        done.signal()
    }.resume()
    done.wait()
    return accepted
}

func get(_ path: String) async throws -> (Int, Data) { try await service.get(path) }

let store = CostStore(database: db)
let october = Period(year: 2026, month: 10)
let monthFrom = october.start, monthTo = october.end
struct Report { var name: String; var path: String; var store: (Bool) async throws -> Void }
let reports = CommandLine.arguments.contains("--load-only") ? [] : [
    Report(name: "chargeback, month", path: "/v1/chargeback?period=2026-10") { raw in
        _ = Chargeback.assemble(period: october, items: try await store.chargebackItems(period: october, rawOnly: raw))
    },
    Report(name: "costs by tenant, day", path: "/v1/costs?from=2026-10-01&to=2026-11-01&group_by=tenant,day") { raw in
        var q = CostQuery(from: monthFrom, to: monthTo, groupBy: [.tenant, .day]); q.rawOnly = raw
        _ = try await store.costs(q)
    },
    Report(name: "costs by model, accelerator", path: "/v1/costs?from=2026-10-01&to=2026-11-01&group_by=model,accelerator") { raw in
        var q = CostQuery(from: monthFrom, to: monthTo, groupBy: [.model, .accelerator]); q.rawOnly = raw
        _ = try await store.costs(q)
    },
]

let ingest = BackgroundIngest()
ingest.run()
let timingClock = ContinuousClock.now
var lines: [String] = []
for r in reports {
    let (status, _) = try await get(r.path)
    guard status == 200 else { print("\(r.path): HTTP \(status)"); exit(2) }
    let http = try await timed(runs) { _ = try await get(r.path) }
    let inProcess = try await timed(runs) { try await r.store(false) }
    let raw = try await timed(3, warmUp: false) { try await r.store(true) } // the raw records take tens of seconds a run
    lines.append(String(format: "%-28@ HTTP p50 %7.1f ms p95 %7.1f ms | store p50 %7.1f ms p95 %7.1f ms | raw records p50 %8.1f ms p95 %8.1f ms | raw/rollup %5.1f×",
                        r.name, http.0, http.1, inProcess.0, inProcess.1, raw.0, raw.1, raw.0 / inProcess.0))
    print(lines.last!)
}
let live = ingest.finish()
let timingSeconds = ms(ContinuousClock.now - timingClock) / 1000
print(String(format: "meanwhile the background client ingested %d records over HTTP (%.0f records/s)", live, Double(live) / timingSeconds))

// --- 3. Freshness ----------------------------------------------------------------------------
let probe = #"{"request_id":"fresh-1","tenant":"tenant-probe","model":"m","accelerator":"H100","pool":"h100-a","started_at":"2026-10-20T10:00:00Z","gpu_seconds":3600,"input_tokens":1,"output_tokens":1}"#
guard postSync(base + "/v1/usage", body: probe) == 1 else { print("probe not accepted"); exit(2) }
let (_, fresh) = try await get("/v1/costs?from=2026-10-01&to=2026-11-01&tenant=tenant-probe")
let freshTotal = (try JSONSerialization.jsonObject(with: fresh) as? [String: Any])?["total"] as? [String: Any]
print("freshness: the report right after the acknowledgement shows \(freshTotal?["requests"] ?? "?") probe record (cost \(freshTotal?["cost_usd"] ?? "?")): reflected at once")

if keep {
    print("kept: \(base) (key in \(dir)/admin.key); psql 'postgresql:///gpuledger?host=\(dir)/pg&user=gpuledger'")
}
await service.stop(keep: keep)
