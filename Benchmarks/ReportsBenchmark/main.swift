// The reports benchmark: not a test. It prints figures.
//
//   swift build -c release && .build/release/gpuledger-bench-reports [--records 10000000] [--runs 20] [--token-pools] [--no-raw]
//
// 1. Starts the release `gpuledger serve` on its embedded PostgreSQL in a temporary folder and
//    loads N realistic records over the 30 days from 2026-10-01 straight into PostgreSQL (not over
//    HTTP), through the same triggers that keep the rollup during ingest: tenants skewed (a few
//    large, many small), 8 models each on its pool and accelerator (one on no pool), hours shaped
//    by ServeGen's hourly request counts, input/output tokens from the Azure 2023 traces
//    (../shared/data/traces, CC-BY-4.0), GPU-seconds from tokens by model size, 1% errors, a team
//    label on most. Pools have capacity that grows mid-month; rates change on 2026-10-15.
// 2. While a background client keeps ingesting over HTTP, times `runs` requests of each report:
//    a month's /v1/chargeback (the fleet's and one tenant's), /v1/costs by tenant and day, /v1/costs by model and accelerator,
//    over HTTP (the whole service) and in process from the store; then the same reports from
//    the raw records only (no rollup), and prints p50/p95 and the ratio.
// 3. Freshness: a record just acknowledged is in the next report (checked, not timed).
import AsyncHTTPClient
import Foundation
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import Logging
import NIOCore
import PostgresNIO

checkArguments(program: "gpuledger-bench-reports", source: "Benchmarks/ReportsBenchmark/main.swift",
               values: ["--records", "--runs", "--ingest-rate", "--binary", "--traces"], flags: ["--keep", "--load-only", "--no-raw", "--token-pools"])

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

try await BenchmarkFleet.load(service, records: total, start: Timestamp.parseRFC3339("2026-10-01T00:00:00Z")!, traces: traces, print: print)
// The background runner keeps the loaded month's hour summaries (latency sketches, labels) first,
// as it would long before anyone reads a month (timing reports beside that catch-up measures it).
await service.foldSummaries()
print(String(format: "hour summaries of the loaded month kept %.0f s after the load", await service.waitForHourSummaries()))
// `--token-pools`: half the pools allocate by tokens (contract section 5), to compare the reports' speed.
if CommandLine.arguments.contains("--token-pools") {
    await sql("UPDATE pools SET allocation = 'tokens' WHERE name IN (SELECT name FROM pools ORDER BY name LIMIT (SELECT count(*) / 2 FROM pools))")
    print("token pools: half the pools allocate by tokens")
}

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

/// One POST from a plain thread, waiting for the answer: the records accepted. (AsyncHTTPClient:
/// URLSession on Linux keeps a CPU busy while it waits, beside the service it measures.)
@Sendable func postSync(_ url: String, body: String) -> Int {
    guard var request = try? HTTPClient.Request(url: url, method: .POST) else { return 0 }
    request.headers.add(name: "Authorization", value: "Bearer \(key)")
    request.headers.add(name: "Content-Type", value: "application/x-ndjson")
    request.body = .string(body)
    guard let response = try? HTTPClient.shared.execute(request: request, deadline: .now() + .seconds(600)).wait(),
          let bytes = response.body, let o = try? JSONSerialization.jsonObject(with: Data(buffer: bytes)) as? [String: Any] else { return 0 }
    return o["accepted"] as? Int ?? 0
}

func get(_ path: String) async throws -> (Int, Data) { try await service.get(path) }

let store = CostStore(database: db)
let october = Period(year: 2026, month: 10)
let monthFrom = october.start, monthTo = october.end
struct Report { var name: String; var path: String; var store: (Bool) async throws -> Void }
let reports = CommandLine.arguments.contains("--load-only") ? [] : [
    Report(name: "chargeback, month", path: "/v1/chargeback?period=2026-10") { raw in
        _ = Chargeback.assemble(period: october, items: try await store.chargebackItems(period: october, now: WallClock.system.now(), rawOnly: raw))
    },
    // One tenant's (tenant-00, the largest): its own items and the other tenants' sums.
    Report(name: "chargeback, one tenant", path: "/v1/chargeback?period=2026-10&tenant=tenant-00") { raw in
        _ = Chargeback.assemble(period: october, items: try await store.chargebackItems(period: october, now: WallClock.system.now(), rawOnly: raw,
                                                                                        detail: .oneTenant("tenant-00")))
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
    if CommandLine.arguments.contains("--no-raw") {
        lines.append(String(format: "%-28@ HTTP p50 %7.1f ms p95 %7.1f ms | store p50 %7.1f ms p95 %7.1f ms", r.name, http.0, http.1, inProcess.0, inProcess.1))
    } else {
        let raw = try await timed(3, warmUp: false) { try await r.store(true) } // the raw records take tens of seconds a run
        lines.append(String(format: "%-28@ HTTP p50 %7.1f ms p95 %7.1f ms | store p50 %7.1f ms p95 %7.1f ms | raw records p50 %8.1f ms p95 %8.1f ms | raw/rollup %5.1f×",
                            r.name, http.0, http.1, inProcess.0, inProcess.1, raw.0, raw.1, raw.0 / inProcess.0))
    }
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
