// The console's page speed benchmark: not a test. It prints figures.
//
//   swift build -c release && .build/release/gpuledger-bench-console [--records 10000000] [--runs 20] [--budgets 1000]
//
// 1. Starts the release `gpuledger serve` on its embedded PostgreSQL in a temporary folder and
//    loads the benchmarks' fleet (`BenchmarkFleet`: N records shaped by the Azure 2023 and
//    ServeGen traces) over the 30 days up to the last whole hour, so that every page, which
//    shows the current month and the latest hours and days, has a month of data at 10 million
//    records; then `--budgets` budgets (one for the fleet, the rest spread over the tenants) and
//    waits for the service's gauge refresh to compute their statuses once, as it does every minute.
// 2. Signs in a finance key's console session and times `runs` GETs of each page over HTTP
//    (the whole service: queries, forecasts, HTML), after one untimed request, and prints p50,
//    p95 and the page's size (the targets: p50 under 150 ms, under 300 KB); then, 3 runs each,
//    the views over long windows (a label breakdown for the month, the Models table over 24 hours
//    and 7 days), which read the hour summaries (labels, latency sketches: sql/0017) once the
//    background runner has kept them (waited for after the load); then the sketches' largest
//    relative error against the exact percentiles over 24 hours and 7 days.
import Foundation
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport

checkArguments(program: "gpuledger-bench-console", source: "Benchmarks/ConsoleBenchmark/main.swift",
               values: ["--records", "--runs", "--budgets", "--binary", "--traces"], flags: ["--keep"])

/// Prints a line at once (stdout to a pipe is block-buffered).
func print(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

let total = option("--records", 10_000_000)
let runs = option("--runs", 20)
let budgetCount = option("--budgets", 1000)
let binary = stringOption("--binary", ".build/release/gpuledger")
let traces = stringOption("--traces", "../shared/data/traces")
let keep = CommandLine.arguments.contains("--keep")

let service = try await BenchmarkService(name: "console", binary: binary, arguments: ["--budget-gauge-interval", "20"])
signal(SIGPIPE, SIG_IGN)
let hour = Timestamp.hour
let lastHour = WallClock.system.now().hourStart
let start = Timestamp(microseconds: lastHour.microseconds - 720 * hour)
try await BenchmarkFleet.load(service, records: total, start: start, traces: traces, print: print)

// Budgets: the fleet's, then the tenants' (monthly, quarterly, some on the total basis).
var budgetRows = ["('fleet', NULL, 'monthly', 5000000, '{0.5,0.8,1}', 'usage')"]
for i in 1..<budgetCount {
    let tenant = String(format: "tenant-%02d", i % 40)
    let period = i % 3 == 0 ? "quarterly" : "monthly"
    budgetRows.append("('b-\(i)', '\(tenant)', '\(period)', \(1000 + (i * 7919) % 200_000), '{0.5,0.8,1}', '\(i % 5 == 0 ? "total" : "usage")')")
}
await service.sql("INSERT INTO budgets (name, tenant, period, amount_usd, thresholds, basis) VALUES " + budgetRows.joined(separator: ","))
print("\(budgetCount) budgets; waiting for the service's gauge refresh to compute their statuses…")
let waitClock = ContinuousClock.now
while true {
    let (_, metrics) = try await service.get("/metrics")
    let text = String(decoding: metrics, as: UTF8.self)
    if text.components(separatedBy: "\ngpuledger_budget_amount_usd{").count - 1 >= budgetCount { break }
    if ContinuousClock.now - waitClock > .seconds(900) { await service.fail("the budget gauges never appeared") }
    try await Task.sleep(for: .seconds(2))
}
print(String(format: "statuses computed (%.0f s after the budgets were added)", milliseconds(ContinuousClock.now - waitClock) / 1000))

// The background runner keeps the hour summaries (latency sketches, labels) of the loaded month.
await service.foldSummaries()
print(String(format: "hour summaries (latency sketches, labels) of every past hour kept %.0f s after the load", await service.waitForHourSummaries()))

// A finance key's console session, as the sign-in form makes one.
let keys = KeyStore(database: service.db)
let finance = try await keys.create(role: .finance, tenant: nil, name: "bench finance").key
guard let principal = try await keys.authenticate(finance) else { await service.fail("no principal") }
let (token, _) = try await SessionStore(database: service.db).create(principal: principal, lifetime: .seconds(3600), now: WallClock.system.now())
let cookie = "gpl_session=\(token)"

// Each page as it opens from the navigation (its default view), then views over long windows
// (a label breakdown for the month, the Models table over a day or a week), timed fewer times.
let pages = [
    "/", "/tenants", "/tenants/tenant-00", "/models", "/models?metric=ttft", "/budgets", "/budgets/fleet", "/budgets/b-1",
    "/capacity", "/capacity?pool=h100-a&horizon_days=30&target_utilization=0.7&budget_usd=200000",
]
// (And the tenant page of the month holding the middle of the data: early in a month the
// current one holds a day or two.)
let middleMonth = String(Timestamp(microseconds: lastHour.microseconds - 720 * hour / 2).rfc3339.prefix(7))
let monthPages = ["/tenants/tenant-00?period=\(middleMonth)"]
let slowViews = ["/tenants/tenant-00?label=team", "/tenants/tenant-00?period=\(middleMonth)&label=team", "/models?range=24h", "/models?range=7d"]
func line(_ page: String, _ p50: String, _ p95: String, _ kb: String) -> String {
    page.padding(toLength: 72, withPad: " ", startingAt: 0) + [p50, p95, kb].map { String(repeating: " ", count: max(0, 10 - $0.count)) + $0 }.joined()
}
print(line("page (finance key)", "p50 ms", "p95 ms", "KB"))
for (list, n) in [(pages + monthPages, runs), (slowViews, 3)] {
    for page in list {
        let (status, body) = try await service.get(page, cookie: cookie)
        guard status == 200 else { await service.fail("\(page): HTTP \(status)\n\(String(decoding: body.prefix(500), as: UTF8.self))") }
        let t = try await timed(n) { _ = try await service.get(page, cookie: cookie) }
        print(line(page + " (\(n) runs)", String(format: "%.1f", t.p50), String(format: "%.1f", t.p95), String(format: "%.1f", Double(body.count) / 1024)))
    }
}
// The sketches' error: the largest relative error of p50/p95/p99 (TTFT, TPOT, E2E, queue; every
// model and the total) against the exact nearest-rank figures, over the last 24 hours and 7 days.
print("")
print("latency sketches against exact percentiles (/v1/stats?group_by=model, exact=false and exact=true):")
for (name, hours) in [("24 hours", Int64(24)), ("7 days", Int64(168))] {
    let to = lastHour.adding(hours: 1), from = to.adding(hours: -hours)
    let uri = "/v1/stats?from=\(from.rfc3339)&to=\(to.rfc3339)&group_by=model"
    var answers: [[String: Any]] = []
    var times: [Double] = []
    for exact in ["false", "true"] {
        let start = ContinuousClock.now
        let (status, body) = try await service.get(uri + "&exact=" + exact)
        times.append(milliseconds(ContinuousClock.now - start))
        guard status == 200, let json = try JSONSerialization.jsonObject(with: body) as? [String: Any] else { await service.fail("\(uri): HTTP \(status)") }
        answers.append(json)
    }
    func rows(_ a: [String: Any]) -> [[String: Any]] { (a["rows"] as? [[String: Any]] ?? []) + [a["total"] as? [String: Any] ?? [:]] }
    var worst: [String: Double] = [:]
    for (s, e) in zip(rows(answers[0]), rows(answers[1])) {
        for metric in ["ttft_ms", "tpot_ms", "e2e_ms", "queue_ms"] {
            guard let sp = s[metric] as? [String: Double], let ep = e[metric] as? [String: Double] else { continue }
            for q in ["p50", "p95", "p99"] {
                guard let x = sp[q], let y = ep[q], y > 0 else { continue }
                worst[q] = max(worst[q] ?? 0, abs(x - y) / y)
            }
        }
    }
    print("  \(name): largest relative error p50 \(String(format: "%.3f%%", (worst["p50"] ?? 0) * 100)), p95 \(String(format: "%.3f%%", (worst["p95"] ?? 0) * 100)), p99 \(String(format: "%.3f%%", (worst["p99"] ?? 0) * 100)) (\(rows(answers[0]).count) rows); sketched \(String(format: "%.0f", times[0])) ms, exact \(String(format: "%.0f", times[1])) ms; \((answers[0]["percentile_method"] as? String ?? "").prefix(11))")
}

if keep { print("kept: \(service.base) (\(cookie)); psql 'postgresql:///gpuledger?host=\(service.dir)/pg&user=gpuledger'") }
await service.stop(keep: keep)
