// The planning benchmark: not a test. It prints figures.
//
//   swift build -c release && .build/release/gpuledger-bench-planning [--tenants 1000] [--days 730] [--runs 20]
//
// Starts the release `gpuledger serve` on its embedded PostgreSQL in a temporary folder, loads two
// years of daily usage for 1,000 tenants straight into PostgreSQL (through the summaries'
// triggers): each tenant's spend grows, has a weekly pattern and noise, two records a day on
// H100s at $3.60/GPU-hour; one monthly budget per tenant (amounts from 0.6× to 1.6× the last
// 30 days' spend, so every state occurs) and one for the fleet. Then times over HTTP:
// the fleet's and one tenant's 30-day spend forecast from two years of history, one budget's
// status, a capacity plan, and `gpuledger budget check --all` (the binary, end to end).
import Foundation
import GPULedgerCore
import GPULedgerTestSupport
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

checkArguments(program: "gpuledger-bench-planning", source: "Benchmarks/PlanningBenchmark/main.swift",
               values: ["--tenants", "--days", "--runs", "--binary"], flags: ["--keep"])

func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

let tenants = option("--tenants", 1000)
let days = option("--days", 730)
let runs = option("--runs", 20)
let binary = stringOption("--binary", ".build/release/gpuledger")
let keep = CommandLine.arguments.contains("--keep")

let service = try await BenchmarkService(name: "planning", binary: binary)
await service.sql("""
    INSERT INTO rates (provider, region, accelerator, tier, effective_from, usd_per_gpu_hour, source, card)
    VALUES ('bench', 'r1', 'H100', 'on_demand', '2020-01-01', 3.60, 'bench', 'bench.csv')
    """)
await service.sql("INSERT INTO default_rates VALUES ('H100', 'bench', 'r1', 'on_demand')")

say("loading \(days) days × \(tenants) tenants × 2 records…")
let loadClock = ContinuousClock.now
let today = WallClock.system.now().dayStart
let first = today.adding(days: -Int64(days))
// A month of days per statement.
for chunk in stride(from: 0, to: days, by: 30) {
    await service.insertRecords("""
        INSERT INTO usage_records (tenant, request_id, model, accelerator, started_at, gpu_seconds, input_tokens, output_tokens)
        SELECT 't-' || lpad(t::text, 4, '0'), 'd' || d || '-' || k, CASE WHEN t % 3 = 0 THEN 'llama-3.1-70b' ELSE 'qwen2.5-72b' END, 'H100',
               TIMESTAMPTZ '\(first.rfc3339)' + d * INTERVAL '1 day' + (10 + 6 * k) * INTERVAL '1 hour',
               round((20000 / power(1 + t, 0.7)) * power(1.0012, d)
                     * (ARRAY[1.08, 1.12, 1.10, 1.06, 1.00, 0.84, 0.80])[1 + (d % 7)]
                     * (0.92 + 0.16 * ((hashint8(t * 100000 + d * 2 + k) & 65535) / 65535.0)) / 2, 3),
               1000 + t, 200 + d
        FROM generate_series(\(chunk), \(min(chunk + 30, days) - 1)) AS d, generate_series(0, \(tenants - 1)) AS t, generate_series(0, 1) AS k
        """)
}
// The budgets below are sized from the daily summary, which the fold fills.
await service.foldSummaries()
await service.sql("""
    INSERT INTO budgets (name, tenant, period, amount_usd, thresholds, basis)
    SELECT tenant, tenant, 'monthly', round(sum(gpu_seconds) / 1000 * (0.6 + (hashtext(tenant) & 1023) / 1023.0), 2), '{0.5,0.8,1.0}'::numeric[], 'usage'
    FROM usage_daily WHERE day >= TIMESTAMPTZ '\(today.rfc3339)' - INTERVAL '30 days' GROUP BY tenant
    UNION ALL
    SELECT 'fleet', NULL, 'monthly', round(sum(gpu_seconds) / 1000 * 1.05, 2), '{0.5,0.8,1.0}'::numeric[], 'usage'
    FROM usage_daily WHERE day >= TIMESTAMPTZ '\(today.rfc3339)' - INTERVAL '30 days'
    """)
await service.sql("VACUUM ANALYZE usage_records")
await service.sql("VACUUM ANALYZE usage_daily")
await service.sql("VACUUM ANALYZE usage_hourly")
say(String(format: "loaded in %.0f s: %d records", milliseconds(ContinuousClock.now - loadClock) / 1000, days * tenants * 2))

/// The first call fits the models (the service keeps forecasts by their exact input, so the
/// repeated calls after it measure the query and a cache hit): both are printed.
func report(_ name: String, _ path: String) async throws {
    var body = Data()
    let fetch = {
        let (status, data) = try await service.get(path)
        guard status == 200 else { await service.fail("\(path): HTTP \(status): \(String(decoding: data, as: UTF8.self))") }
        body = data
    }
    let cold = try await timed(1, warmUp: false, fetch)
    let t = try await timed(runs, warmUp: false, fetch)
    let method = ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["method"] as? String ?? ""
    say(String(format: "%@ HTTP first %7.1f ms | then p50 %7.1f ms p95 %7.1f ms", name.padding(toLength: 38, withPad: " ", startingAt: 0), cold.p50, t.p50, t.p95))
    if !method.isEmpty { say("    method: " + method) }
}

try await report("spend forecast, fleet, 30 days", "/v1/forecast/spend?horizon_days=30")
try await report("spend forecast, one tenant, 30 days", "/v1/forecast/spend?tenant=t-0001&horizon_days=30")
try await report("budget status, one tenant", "/v1/budgets/t-0001/status")
try await report("capacity plan, H100, 30 days", "/v1/forecast/capacity?accelerator=H100&horizon_days=30")

// `budget check --all`, end to end: the binary, one HTTP request, every budget's status.
var checks: [Double] = []
var output = ""
for _ in 0..<3 {
    let t0 = ContinuousClock.now
    let p = try ChildProcess(binary, ["budget", "check", "--all", "--url", service.base, "--key", service.key])
    let code = try await p.wait(timeout: .seconds(600))
    checks.append(milliseconds(ContinuousClock.now - t0))
    output = p.output
    guard code == 0 || code == 1 else { await service.fail("budget check exited \(code):\n\(output.suffix(2000))") }
}
let lines = output.split(separator: "\n").filter { $0.contains("  spent $") }
var states: [String: Int] = [:]
for line in lines { states[String(line.split(separator: " ", omittingEmptySubsequences: true)[1]), default: 0] += 1 }
say(String(format: "budget check --all: %d budgets: first %.2f s (every forecast fitted), then %.2f s and %.2f s", lines.count,
             checks[0] / 1000, checks[1] / 1000, checks[2] / 1000)
    + "; states: " + states.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))

if keep { say("kept: \(service.base) (key in \(service.dir)/admin.key)") }
await service.stop(keep: keep)
