// The ingest benchmark: not a test. It prints figures.
//
//   swift build -c release && .build/release/gpuledger-bench-ingest [--records 1000000] [--batch 10000] [--connections 2] [--rounds 3] [--shape month|stream|hour] [--usage-metrics on|off]
//
// 1. Parser: decodes the same NDJSON with the service's RecordParser and with Foundation's
//    JSONDecoder, and prints records per second for each; then the service's work per record in
//    process, step by step (parse, groups, summary deltas, pool-days, usage metrics, COPY text).
// 2. Service: starts the release `gpuledger serve` on its embedded PostgreSQL in a temporary
//    folder, posts N realistic records (50 tenants, 10 models, 4 accelerators, a month of
//    timestamps) as NDJSON in batches over concurrent connections, and prints records per second
//    and the server's peak resident memory (VmHWM).
// 3. Baseline: loads the same records with `psql \copy` into an identical empty table with the
//    same unique key, on the same cluster, and prints that rate and the ratio.
import Foundation
import GPULedgerAPI
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

checkArguments(program: "gpuledger-bench-ingest", source: "Benchmarks/IngestBenchmark/main.swift",
               values: ["--records", "--batch", "--connections", "--rounds", "--shape", "--usage-metrics", "--binary"])


/// Prints a line at once (stdout to a pipe is block-buffered, and a benchmark's progress matters).
func print(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

let total = option("--records", 1_000_000)
let batchSize = option("--batch", 10_000)
let connections = option("--connections", 2)
let binary = stringOption("--binary", ".build/release/gpuledger")
let shape = stringOption("--shape", "month")
guard ["month", "stream", "hour"].contains(shape) else { print("--shape takes month, stream or hour"); exit(2) }
let fmt = { (x: Double) in String(format: "%.0f", x) }

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

// Records, generated before anything is timed.
print("generating \(total) records…")
var batches: [Data] = []
var lines: [String] = []
lines.reserveCapacity(batchSize)
var bytes = 0
for i in 0..<total {
    // --shape month (the default): every record at a random moment of the month (a backfill);
    // stream: the month's records in time order (each batch of 10,000 covers ~7 hours);
    // hour: a fleet's live hour, in time order (a million requests an hour is ~280 a second).
    let at: Timestamp? = switch shape {
    case "stream": Timestamp(secondsSince1970: 1_790_812_800 + Int64(i) * 30 * 86_400 / Int64(total))
    case "hour": Timestamp(microseconds: 1_790_812_800_000_000 + Int64(i) * 3_600_000_000 / Int64(total))
    default: nil
    }
    lines.append(SampleRecords.json(i, at: at))
    if lines.count == batchSize || i == total - 1 {
        let body = Data((lines.joined(separator: "\n") + "\n").utf8)
        bytes += body.count
        batches.append(body)
        lines.removeAll(keepingCapacity: true)
    }
}
print("  \(batches.count) batches, \(bytes / 1_048_576) MiB of NDJSON, \(bytes / total) bytes per record")

// 1. Parser against JSONDecoder, on up to 200,000 records.
struct CodableRecord: Decodable {
    struct Labels: Decodable { var team: String; var env: String }
    var request_id: String, tenant: String, model: String, accelerator: String, pool: String?
    var started_at: String, gpu_seconds: Double, input_tokens: Int64, output_tokens: Int64
    var cached_input_tokens: Int64?, ttft_ms: Double?, tpot_ms: Double?, e2e_ms: Double?
    var status: String?, error_type: String?, labels: Labels?
}
do {
    let sample = Array(batches.prefix(max(1, 200_000 / batchSize)))
    let n = sample.count * batchSize
    let parser = RecordParser(now: WallClock.system.now())
    var start = ContinuousClock.now
    var parsed = 0
    for b in sample { parsed += try parser.parse(Array(b), format: .ndjson).records.count }
    let ours = seconds(ContinuousClock.now - start)
    start = ContinuousClock.now
    let decoder = JSONDecoder()
    var decoded = 0
    for b in sample {
        for line in b.split(separator: 0x0A) { _ = try decoder.decode(CodableRecord.self, from: Data(line)); decoded += 1 }
    }
    let foundation = seconds(ContinuousClock.now - start)
    print("parser: RecordParser \(fmt(Double(parsed) / ours)) records/s (with every field rule checked); JSONDecoder \(fmt(Double(decoded) / foundation)) records/s (decoding only), on \(n) records")
    // The service's other per-record work on a batch, step by step: best of 5 passes over the
    // same parsed batches, in nanoseconds per record (the service parses with the known
    // accelerators checked, as here).
    let known = Set(SampleRecords.accelerators)
    let servicesParser = RecordParser(now: WallClock.system.now(), knownAccelerators: known, maxTokens: RecordParser.serviceMaxTokens)
    let parsedBatches = try sample.map { try servicesParser.parse(Array($0), format: .ndjson).records }
    let metrics = AppMetrics()
    metrics.setPriceBook(PriceBook(rates: Dictionary(uniqueKeysWithValues: SampleRecords.accelerators.map {
        (PriceBook.Key(provider: "bench", region: "r1", accelerator: $0, tier: "on_demand"), [(from: Int64(0), usd: 2.5)])
    }), defaults: Dictionary(uniqueKeysWithValues: SampleRecords.accelerators.map {
        ($0, PriceBook.Key(provider: "bench", region: "r1", accelerator: $0, tier: "on_demand"))
    })))
    func best(_ work: () throws -> Void) rethrows -> Double {
        var times: [Double] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            try work()
            times.append(seconds(ContinuousClock.now - start) * 1e9 / Double(n))
        }
        return times.min()!
    }
    var deltaRows = 0, poolDays = 0, copyBytes = 0
    let bodies = sample.map { Array($0) }
    let parse = try best { for b in bodies { _ = try servicesParser.parse(b, format: .ndjson) } }
    let allGroups = parsedBatches.map { RecordGroups($0) }
    let grouping = best { for records in parsedBatches { _ = RecordGroups(records) } }
    let deltas = best { deltaRows = 0; for (records, g) in zip(parsedBatches, allGroups) { deltaRows += SummaryDelta.rows(records, groups: g).count } }
    let days = best { poolDays = 0; for (records, g) in zip(parsedBatches, allGroups) { poolDays += g.poolDays(records).count } }
    let usage = best { for (records, g) in zip(parsedBatches, allGroups) { metrics.usage(records, groups: g) } }
    let text = best { copyBytes = 0; for records in parsedBatches { copyBytes += UsageStore.copyText(records).count } }
    print(String(format: "the service's work per record, in process (ns, best of 5 passes over %d records): parse %.0f, groups %.0f, summary deltas %.0f (%d rows), pool-days %.0f (%d), usage metrics %.0f, COPY text %.0f (%d bytes a record); in all %.0f",
                 n, parse, grouping, deltas, deltaRows, days, poolDays, usage, text, copyBytes / n, parse + grouping + deltas + days + usage + text))
}

// 2. The service.
let dir = "/tmp/gpl-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer {
    try? FileManager.default.removeItem(atPath: dir)
}
guard FileManager.default.isExecutableFile(atPath: binary) else {
    print("no \(binary): build it first with swift build -c release")
    exit(2)
}
let port = freePort()
let usageMetrics = stringOption("--usage-metrics", "on")
print("service: --usage-metrics \(usageMetrics)")
let serve = try ChildProcess(binary, ["serve", "--port", "\(port)", "--data-dir", dir, "--usage-metrics", usageMetrics],
                             environment: ["GPULEDGER_LOG_LEVEL": "warning"])
let base = "http://127.0.0.1:\(port)"
try await waitUntil(timeout: .seconds(120), "the service") {
    if serve.hasExited { print(serve.output); exit(2) }
    return await httpStatus(base + "/readyz")?.0 == 200
}
let key = try String(contentsOfFile: dir + "/admin.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

/// Posts every batch over `connections` keep-alive HTTP/1.1 connections, with plain blocking
/// sockets in threads. (URLSession spent more CPU than the server it measured, on a 2-core
/// machine where the client, the server and PostgreSQL share the cores.)
final class RawPoster: @unchecked Sendable {
    let lock = NSLock()
    var next = 0
    var accepted = 0
    var failure: String?

    func run() -> Int {
        let group = DispatchGroup()
        for _ in 0..<connections {
            group.enter()
            Thread { self.connectionLoop(); group.leave() }.start()
        }
        group.wait()
        if let failure { print("post failed: \(failure)"); exit(2) }
        return accepted
    }

    func take() -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard next < allBatches.count, failure == nil else { return nil }
        defer { next += 1 }
        return next
    }

    func fail(_ message: String) { lock.lock(); failure = failure ?? message; lock.unlock() }

    func connectionLoop() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { fail("connect: \(String(cString: strerror(errno)))"); return }
        var response = [UInt8](repeating: 0, count: 65536)
        while let i = take() {
            let body = allBatches[i]
            let head = "POST /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\nContent-Type: application/x-ndjson\r\nContent-Length: \(body.count)\r\n\r\n"
            guard writeAll(fd, Array(head.utf8)), body.withUnsafeBytes({ writeAll(fd, $0) }) else { fail("write failed"); return }
            // Read the status line, headers and the Content-Length body.
            var got = 0
            var headerEnd = -1
            var contentLength = 0
            while true {
                let n = response.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
                guard n > 0 else { fail("connection closed"); return }
                got += n
                if headerEnd < 0, let r = find(response, got) {
                    headerEnd = r
                    let head = String(decoding: response[0..<r], as: UTF8.self).lowercased()
                    if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }) {
                        contentLength = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                    guard head.hasPrefix("http/1.1 200") else {
                        fail(String(decoding: response[0..<got], as: UTF8.self)); return
                    }
                }
                if headerEnd >= 0, got >= headerEnd + 4 + contentLength { break }
            }
            let json = Data(response[(headerEnd + 4)..<(headerEnd + 4 + contentLength)])
            guard let answer = try? JSONSerialization.jsonObject(with: json) as? [String: Any], let a = answer["accepted"] as? Int else {
                fail(String(decoding: json, as: UTF8.self)); return
            }
            lock.lock(); accepted += a; lock.unlock()
        }
    }

    func find(_ b: [UInt8], _ count: Int) -> Int? {
        guard count >= 4 else { return nil }
        for i in 0...(count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { writeAll(fd, $0) } }

    func writeAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer) -> Bool {
        var off = 0
        while off < buf.count {
            let n = write(fd, buf.baseAddress! + off, buf.count - off)
            if n <= 0 { if errno == EINTR { continue }; return false }
            off += n
        }
        return true
    }
}
let allBatches = batches

func postAll() async throws -> Int { RawPoster().run() }

// The same records in COPY's text format, for psql.
let socketDir = dir + "/pg"
let psqlURL = "postgresql:///gpuledger?host=\(socketDir)&user=gpuledger"
let copyFile = dir + "/records.copy"
do {
    let parser = RecordParser(now: WallClock.system.now())
    _ = FileManager.default.createFile(atPath: copyFile, contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: copyFile))
    for b in batches { try out.write(contentsOf: UsageStore.copyText(try parser.parse(Array(b), format: .ndjson).records)) }
    try out.close()
}
func psql(_ commands: String...) async throws {
    let p = try ChildProcess("/usr/bin/psql", [psqlURL, "-v", "ON_ERROR_STOP=1", "-q"] + commands.flatMap { ["-c", $0] })
    guard try await p.wait(timeout: .seconds(1800)) == 0 else { print("psql failed: \(p.output)"); exit(2) }
}

/// One number from a query (and then any other commands that print nothing).
func psqlValue(_ query: String, _ then: String...) async throws -> Double {
    let p = try ChildProcess("/usr/bin/psql", [psqlURL, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", query] + then.flatMap { ["-c", $0] })
    guard try await p.wait(timeout: .seconds(600)) == 0 else { print("psql failed: \(p.output)"); exit(2) }
    return Double(p.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .nan
}

// The service's start-up work runs once its replica takes the background lease: the first fold
// and the fleet gauges' first refresh. In earlier runs that refresh ran in round 1 (PostgreSQL's
// pg_stat_activity showed its queries beside the first batches' COPY), which is why round 1 was
// the slowest; a backfill into a service that has been up for seconds does not meet it. Wait
// for both before the first round.
do {
    let start = ContinuousClock.now
    try await waitUntil(timeout: .seconds(120), "the service's start-up background work") {
        try await psqlValue("SELECT count(DISTINCT job) FROM background_runs WHERE job IN ('summary_fold', 'fleet_gauges')") >= 2
    }
    print(String(format: "start-up background work (first fold, first fleet gauges) done %.1f s after ready", seconds(ContinuousClock.now - start)))
}

// Rounds, alternating the two loads, each into an empty table after a checkpoint, so that
// neither side pays for the other's checkpoint; medians are reported.
let rounds = option("--rounds", 3)
var serviceRates: [Double] = []
var copyRates: [Double] = []
var foldLags: [Double] = []
/// CPU seconds (user + system) a process has used so far, from /proc.
func cpuSeconds(_ pid: pid_t) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return 0 }
    let f = stat[stat.index(after: close)...].split(separator: " ")
    return (Double(f[11]) ?? 0) / 100 + (Double(f[12]) ?? 0) / 100 // utime, stime in clock ticks (100 Hz)
}
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}
// Round 0 is a warm-up, printed and not counted. On a new cluster the first load creates the
// WAL segment files it writes (each 16 MB, zero-filled before use: 1 file before it, 13 after a
// month-wide load; PostgreSQL's wait event WALInitWrite showed in that round only), which a
// running cluster recycles. Round 1 was the slowest of five in most earlier runs (0.51-0.59 of
// `\copy` against medians of 0.70-0.73); with the warm-up, the first counted round was not the
// slowest in any of the three shapes' runs of 2026-12-03.
let walFilesAtStart = try await psqlValue("SELECT count(*) FROM pg_ls_waldir()")
for round in 0...rounds {
    try await psql("TRUNCATE usage_records, usage_delta, usage_hourly, usage_daily, usage_daily_fleet, pool_day_versions", "CHECKPOINT")
    let serverCPU = cpuSeconds(serve.pid), clientCPU = ownCPUSeconds()
    let start = ContinuousClock.now
    let accepted = try await postAll()
    let serviceSeconds = seconds(ContinuousClock.now - start)
    print(String(format: "  round %d: gpuledger serve used %.1f CPU-s, this client %.1f CPU-s, in %.1f s", round, cpuSeconds(serve.pid) - serverCPU, ownCPUSeconds() - clientCPU, serviceSeconds))
    guard accepted == total else { print("only \(accepted) of \(total) accepted"); exit(2) }
    let roundService = Double(total) / serviceSeconds
    // The service folds the summary deltas every second; reports are exact meanwhile (they read
    // the deltas too), but the fold's backlog is work: wait for it, and say how long it took.
    // One psql that counts the deltas left and then waits in the server until none is left,
    // looking every 20 ms. (Until 2026-12-03 this started a psql every 200 ms to count them: the
    // lag read up to 200 ms late, plus a process start and a count of the whole table each time,
    // on the two cores the fold was using.)
    let deltas = try await psqlValue("SELECT count(*) FROM usage_delta",
                                     "DO $$ BEGIN WHILE EXISTS (SELECT 1 FROM usage_delta) LOOP PERFORM pg_sleep(0.02); END LOOP; END $$")
    let foldLag = seconds(ContinuousClock.now - start) - serviceSeconds
    print(String(format: "  round %d: summary deltas folded %.1f s after the last answer (%.0f delta rows left then)", round, foldLag, deltas))

    try await psql("DROP TABLE IF EXISTS bench_copy", "CREATE TABLE bench_copy (LIKE usage_records INCLUDING ALL)", "CHECKPOINT")
    let copyStart = ContinuousClock.now
    try await psql("\\copy bench_copy (\(UsageStore.columnList)) FROM '\(copyFile)'")
    let copySeconds = seconds(ContinuousClock.now - copyStart)
    let roundCopy = Double(total) / copySeconds
    print("round \(round)\(round == 0 ? " (warm-up, not counted)" : ""): service \(fmt(roundService)) records/s (\(String(format: "%.1f", serviceSeconds)) s), psql \\copy \(fmt(roundCopy)) records/s (\(String(format: "%.1f", copySeconds)) s), ratio \(String(format: "%.2f", roundService / roundCopy))")
    if round == 0 {
        print(String(format: "  WAL segment files: %.0f before the warm-up, %.0f after it", walFilesAtStart,
                     try await psqlValue("SELECT count(*) FROM pg_ls_waldir()")))
    } else {
        serviceRates.append(roundService)
        copyRates.append(roundCopy)
        foldLags.append(foldLag)
    }
}
// The same batches again: every record a duplicate, so every batch takes the staging path
// (the direct COPY fails on the unique key and is rolled back first). This is the cost that
// the write path avoids for batches of new records.
do {
    let start = ContinuousClock.now
    let accepted = try await postAll()
    let elapsed = seconds(ContinuousClock.now - start)
    print("resend of all \(total) records (all duplicates, staging path): \(fmt(Double(total) / elapsed)) records/s, \(accepted) accepted")
}
if let (_, text) = await httpStatus(base + "/metrics") {
    let lines = text.split(separator: "\n")
    func value(_ name: String) -> Double { lines.first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) } ?? .nan }
    let folds = value("gpuledger_summary_fold_duration_seconds_count"), foldSeconds = value("gpuledger_summary_fold_duration_seconds_sum")
    print(String(format: "summary folds: %.0f, %.0f delta rows, %.1f s in all (%.0f ms each on average)", folds,
                 value("gpuledger_summary_folded_rows_total"), foldSeconds, foldSeconds / folds * 1000))
}
let status = (try? String(contentsOfFile: "/proc/\(serve.pid)/status", encoding: .utf8)) ?? ""
let hwmKB = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
let serviceRate = median(serviceRates), copyRate = median(copyRates)
print("service: \(total) records, NDJSON in batches of \(batchSize) over \(connections) connections: median \(fmt(serviceRate)) records/s")
print("psql \\copy into an identical empty table with the same unique key: median \(fmt(copyRate)) records/s")
print(String(format: "ratio service / \\copy = %.2f (target >= 0.75); server peak RSS %d MB (target < 300)", serviceRate / copyRate, hwmKB / 1024))
print(String(format: "fold lag after the last answer: median %.1f s, longest %.1f s (target <= 2 s; looked for every 20 ms)", median(foldLags), foldLags.max() ?? .nan))

serve.signal(SIGTERM)
_ = try await serve.wait()
