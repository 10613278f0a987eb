// The ingest benchmark: not a test. It prints figures.
//
//   swift build -c release && .build/release/gpuledger-bench-ingest [--records 1000000] [--batch 10000] [--connections 2]
//
// 1. Parser: decodes the same NDJSON with the service's RecordParser and with Foundation's
//    JSONDecoder, and prints records per second for each.
// 2. Service: starts the release `gpuledger serve` on its embedded PostgreSQL in a temporary
//    folder, posts N realistic records (50 tenants, 10 models, 4 accelerators, a month of
//    timestamps) as NDJSON in batches over concurrent connections, and prints records per second
//    and the server's peak resident memory (VmHWM).
// 3. Baseline: loads the same records with `psql \copy` into an identical empty table with the
//    same unique key, on the same cluster, and prints that rate and the ratio.
import Foundation
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

func option(_ name: String, _ fallback: Int) -> Int {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) { return v }
    return fallback
}
func stringOption(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count { return args[i + 1] }
    return fallback
}

let total = option("--records", 1_000_000)
let batchSize = option("--batch", 10_000)
let connections = option("--connections", 2)
let binary = stringOption("--binary", ".build/release/gpuledger")
let fmt = { (x: Double) in String(format: "%.0f", x) }

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

// Records, generated before anything is timed.
print("generating \(total) records…")
var batches: [Data] = []
var lines: [String] = []
lines.reserveCapacity(batchSize)
var bytes = 0
for i in 0..<total {
    lines.append(SampleRecords.json(i))
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
    let parser = RecordParser(now: .now())
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
let serve = try ChildProcess(binary, ["serve", "--port", "\(port)", "--data-dir", dir], environment: ["GPULEDGER_LOG_LEVEL": "warning"])
let base = "http://127.0.0.1:\(port)"
try await waitUntil(timeout: .seconds(120), "the service") {
    if serve.hasExited { print(serve.output); exit(2) }
    return await httpStatus(base + "/readyz")?.0 == 200
}
let key = try String(contentsOfFile: dir + "/admin.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

actor Queue {
    var next = 0
    let count: Int
    init(count: Int) { self.count = count }
    func take() -> Int? {
        guard next < count else { return nil }
        defer { next += 1 }
        return next
    }
}
let queue = Queue(count: batches.count)
let session = URLSession(configuration: .ephemeral)
let allBatches = batches
print("posting over \(connections) connections…")
let start = ContinuousClock.now
let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
    for _ in 0..<connections {
        group.addTask {
            var n = 0
            while let i = await queue.take() {
                var request = URLRequest(url: URL(string: base + "/v1/usage")!)
                request.httpMethod = "POST"
                request.setValue("application/x-ndjson", forHTTPHeaderField: "Content-Type")
                request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
                request.httpBody = allBatches[i]
                request.timeoutInterval = 600
                let (data, response) = try await session.data(for: request)
                guard (response as? HTTPURLResponse)?.statusCode == 200,
                      let answer = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let a = answer["accepted"] as? Int else {
                    throw NSError(domain: "bench", code: 1, userInfo: [NSLocalizedDescriptionKey: String(decoding: data, as: UTF8.self)])
                }
                n += a
            }
            return n
        }
    }
    var sum = 0
    for try await n in group { sum += n }
    return sum
}
let serviceSeconds = seconds(ContinuousClock.now - start)
let status = (try? String(contentsOfFile: "/proc/\(serve.pid)/status", encoding: .utf8)) ?? ""
let hwm = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.map { $0.split(separator: " ").dropFirst().first.map(String.init) ?? "?" } ?? "?"
let serviceRate = Double(accepted) / serviceSeconds
print("service: \(accepted) records accepted in \(String(format: "%.1f", serviceSeconds)) s = \(fmt(serviceRate)) records/s; server peak RSS \((Int(hwm ?? "") ?? 0) / 1024) MB")

// 3. psql \copy of the same records into an identical empty table with the same unique key.
let socketDir = dir + "/pg"
let psqlURL = "postgresql:///gpuledger?host=\(socketDir)&user=gpuledger"
let copyFile = dir + "/records.copy"
do {
    let parser = RecordParser(now: .now())
    FileManager.default.createFile(atPath: copyFile, contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: copyFile))
    for b in batches { try out.write(contentsOf: UsageStore.copyText(try parser.parse(Array(b), format: .ndjson).records)) }
    try out.close()
}
func psql(_ command: String) async throws -> (Int32, String) {
    let p = try ChildProcess("/usr/bin/psql", [psqlURL, "-v", "ON_ERROR_STOP=1", "-q", "-c", command])
    return (try await p.wait(timeout: .seconds(1800)), p.output)
}
_ = try await psql("CREATE TABLE bench_copy (LIKE usage_records INCLUDING ALL)")
let copyStart = ContinuousClock.now
let (rc, out) = try await psql("\\copy bench_copy (\(UsageStore.columnList)) FROM '\(copyFile)'")
let copySeconds = seconds(ContinuousClock.now - copyStart)
guard rc == 0 else { print("psql failed: \(out)"); exit(2) }
let copyRate = Double(total) / copySeconds
print("psql \\copy: \(total) records in \(String(format: "%.1f", copySeconds)) s = \(fmt(copyRate)) records/s")
print(String(format: "ratio service / \\copy = %.2f (target >= 0.75); server peak RSS %@ MB (target < 300)", serviceRate / copyRate, "\((Int(hwm ?? "") ?? 0) / 1024)"))

serve.signal(SIGTERM)
_ = try await serve.wait()
