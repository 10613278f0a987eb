import ArgumentParser
import Foundation
import GPULedgerCore

/// Options of the commands that talk to a running service.
struct ServiceOptions: ParsableArguments {
    @Option(help: "The service's URL (GPULEDGER_URL, default http://127.0.0.1:8080).") var url: String?
    @Option(help: "API key (GPULEDGER_KEY, default the contents of .gpuledger/admin.key).") var key: String?

    var baseURL: String {
        var u = url ?? environment("GPULEDGER_URL") ?? "http://127.0.0.1:8080"
        while u.hasSuffix("/") { u.removeLast() }
        return u
    }

    func apiKey() throws -> String {
        if let key { return key }
        if let key = environment("GPULEDGER_KEY") { return key }
        let dir = environment("GPULEDGER_DATA_DIR") ?? ".gpuledger"
        if let text = try? String(contentsOfFile: dir + "/admin.key", encoding: .utf8) {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        throw ValidationError("no API key: pass --key, set GPULEDGER_KEY, or run where \(dir)/admin.key exists")
    }
}

struct Ingest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send usage records from NDJSON or CSV files to the service.",
        discussion: """
            FILE is NDJSON (one record per line) or CSV with the record fields as columns (by the
            .csv extension, or by content for '-', standard input). CSV labels go in a 'labels'
            column as a JSON object or in 'labels.KEY' columns; empty cells are absent fields.
            Batches that fail with 503 or a dropped connection are retried: ingest is idempotent,
            so a retry never stores a record twice. Exit status: 0 all stored, 1 records were
            refused, 2 the service could not be reached or refused the key.
            """)

    @Argument(help: "Files to send; '-' reads standard input.") var files: [String]
    @Option(help: "Records per request (at most 100000).") var batchSize: Int = 10_000
    @Option(help: "Give up on a batch after this many tries.") var retries: Int = 8
    @OptionGroup var service: ServiceOptions

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("name at least one FILE, or '-' for standard input") }
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 100000") }
    }

    func run() async throws {
        let client = IngestClient(client: try ServiceClient(service), retries: retries)
        var totals = IngestClient.Totals()
        let progress = Progress(enabled: isatty(STDERR_FILENO) == 1)
        let start = Date()
        var failed = false
        for file in files {
            do {
                let source = try RecordSource(path: file)
                try await source.batches(of: batchSize) { batch in
                    let answer = try await client.send(batch)
                    totals.add(answer, records: batch.count)
                    progress.update(fraction: source.fraction, totals: totals, since: start)
                }
            } catch let rejected as IngestClient.Rejected {
                progress.clear()
                note("\(file): \(rejected.description)")
                failed = true
                if rejected.fatal { throw ExitCode(2) }
                break
            }
        }
        progress.clear()
        let seconds = Date().timeIntervalSince(start)
        let rate = seconds > 0 ? Double(totals.records) / seconds : 0
        var summary = "\(totals.records) records sent: \(totals.accepted) accepted, \(totals.duplicates) duplicates, \(totals.conflicts.count) conflicts"
        summary += String(format: " in %.1f s (%.0f records/s)", seconds, rate)
        if totals.retries > 0 { summary += ", \(totals.retries) retries" }
        print(summary)
        if !totals.conflicts.isEmpty {
            note("conflicts (resent with different content; the stored record was kept): \(totals.conflicts.prefix(20).joined(separator: ", "))\(totals.conflicts.count > 20 ? ", …" : "")")
        }
        if failed { throw ExitCode(1) }
    }
}

/// Posts NDJSON batches with retries.
struct IngestClient: Sendable {
    struct Answer: Decodable, Sendable {
        var accepted: Int
        var duplicates: Int
        var conflicts: [String]
    }

    struct Totals {
        var records = 0
        var accepted = 0
        var duplicates = 0
        var conflicts: [String] = []
        var retries = 0
        mutating func add(_ a: (Answer, Int), records n: Int) {
            records += n
            accepted += a.0.accepted
            duplicates += a.0.duplicates
            conflicts += a.0.conflicts
            retries += a.1
        }
    }

    struct Rejected: Error, CustomStringConvertible {
        var description: String
        /// The service cannot be used at all (bad key, unreachable): stop everything.
        var fatal: Bool
    }

    let client: ServiceClient
    let retries: Int

    /// Sends one batch; returns the answer and how many retries it took.
    func send(_ batch: RecordSource.Batch) async throws -> (Answer, Int) {
        var attempt = 0
        var delay = 0.5
        while true {
            var lastProblem = ""
            do {
                let reply = try await client.send("POST", "/v1/usage", contentType: "application/x-ndjson", body: batch.body, timeout: 300)
                switch reply.status {
                case 200..<300:
                    return (try JSONDecoder().decode(Answer.self, from: reply.data), attempt)
                case 502, 503, 504:
                    lastProblem = "HTTP \(reply.status): \(reply.errorMessage)"
                    if let after = reply.header("Retry-After").flatMap(Double.init) { delay = max(delay, after) }
                case 401, 403:
                    throw Rejected(description: "HTTP \(reply.status): \(reply.errorMessage)", fatal: true)
                case 422:
                    throw Rejected(description: batch.describe422(reply.data), fatal: false)
                case 400:
                    throw Rejected(description: batch.describe400(reply.data), fatal: false)
                default:
                    throw Rejected(description: "lines \(batch.firstLine)–\(batch.lastLine): HTTP \(reply.status): \(reply.errorMessage)", fatal: false)
                }
            } catch let e as ServiceClient.Unreachable {
                lastProblem = "connection failed: \(e.description)"
            }
            attempt += 1
            guard attempt <= retries else {
                throw Rejected(description: "gave up after \(retries) retries: \(lastProblem)", fatal: true)
            }
            note("retrying lines \(batch.firstLine)–\(batch.lastLine) in \(String(format: "%.1f", delay)) s (\(lastProblem))")
            try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            delay = min(delay * 2, 30)
        }
    }
}

/// Reads records from a file as NDJSON lines, converting CSV rows to NDJSON.
final class RecordSource: @unchecked Sendable {
    struct Batch: Sendable {
        var body: Data
        /// The source line of each record in the batch (1-based; for CSV, counting the header).
        var lines: [Int]
        var count: Int { lines.count }
        var firstLine: Int { lines.first ?? 0 }
        var lastLine: Int { lines.last ?? 0 }

        func describe422(_ data: Data) -> String {
            struct E: Decodable {
                struct D: Decodable { var index: Int?; var field: String?; var message: String }
                struct I: Decodable { var message: String; var details: [D]? }
                var error: I
            }
            guard let e = try? JSONDecoder().decode(E.self, from: data) else { return "HTTP 422: \(ServiceClient.message(data))" }
            var out = "refused lines \(firstLine)–\(lastLine): \(e.error.message)"
            for d in e.error.details ?? [] {
                let line = d.index.flatMap { $0 < lines.count ? lines[$0] : nil }.map { "line \($0)" } ?? "?"
                out += "\n  \(line): \(d.field ?? ""): \(d.message)"
            }
            return out
        }

        func describe400(_ data: Data) -> String {
            struct E: Decodable {
                struct D: Decodable { var line: Int?; var message: String }
                struct I: Decodable { var message: String; var details: [D]? }
                var error: I
            }
            guard let e = try? JSONDecoder().decode(E.self, from: data) else { return "HTTP 400: \(ServiceClient.message(data))" }
            if let l = e.error.details?.first?.line, l >= 1, l <= lines.count {
                return "line \(lines[l - 1]): \(e.error.details?.first?.message ?? e.error.message)"
            }
            return "refused lines \(firstLine)–\(lastLine): \(e.error.message)"
        }
    }

    let path: String
    let handle: FileHandle
    private(set) var isCSV = false
    let size: UInt64
    private(set) var consumed: UInt64 = 0
    private var pending = Data()
    private var eof = false
    private var lineNumber = 0

    var fraction: Double { size > 0 ? min(1, Double(consumed) / Double(size)) : 0 }

    init(path: String) throws {
        self.path = path
        if path == "-" {
            handle = FileHandle.standardInput
            size = 0
        } else {
            guard let h = FileHandle(forReadingAtPath: path) else {
                throw IngestClient.Rejected(description: "cannot open \(path)", fatal: true)
            }
            handle = h
            size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0
        }
        if path.lowercased().hasSuffix(".csv") {
            isCSV = true
        } else if path.lowercased().hasSuffix(".ndjson") || path.lowercased().hasSuffix(".jsonl") || path.lowercased().hasSuffix(".json") {
            isCSV = false
        } else {
            fillBuffer()
            let first = pending.first { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }
            isCSV = first != nil && first != UInt8(ascii: "{")
        }
    }

    private func fillBuffer() {
        guard !eof else { return }
        let chunk = handle.readData(ofLength: 1 << 20)
        if chunk.isEmpty { eof = true } else { pending.append(chunk) }
    }

    /// The next line without its terminator, or nil at the end.
    private func nextLine() -> Data? {
        while true {
            if let nl = pending.firstIndex(of: 0x0A) {
                var line = pending[pending.startIndex..<nl]
                consumed += UInt64(line.count + 1)
                pending = pending[(nl + 1)...]
                if line.last == 0x0D { line = line.dropLast() }
                lineNumber += 1
                return Data(line)
            }
            if eof {
                guard !pending.isEmpty else { return nil }
                let line = pending
                consumed += UInt64(line.count)
                pending = Data()
                lineNumber += 1
                return line
            }
            fillBuffer()
        }
    }

    func batches(of size: Int, _ send: (Batch) async throws -> Void) async throws {
        if isCSV { try await csvBatches(of: size, send); return }
        var body = Data()
        var lines: [Int] = []
        while let line = nextLine() {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            body.append(line)
            body.append(0x0A)
            lines.append(lineNumber)
            if lines.count == size {
                try await send(Batch(body: body, lines: lines))
                body = Data()
                lines = []
            }
        }
        if !lines.isEmpty { try await send(Batch(body: body, lines: lines)) }
    }

    private func csvBatches(of size: Int, _ send: (Batch) async throws -> Void) async throws {
        // The CSV is read whole and parsed in memory, with the line each row starts on.
        var all = pending
        all.append(handle.readDataToEndOfFile())
        consumed = UInt64(all.count)
        guard let text = String(data: all, encoding: .utf8) else {
            throw IngestClient.Rejected(description: "\(path) is not UTF-8 text", fatal: false)
        }
        let rows = CSVRows.parse(text)
        guard let header = rows.first else { return }
        let converter = CSVRecordConverter(header: header.fields)
        var body = Data()
        var lines: [Int] = []
        for row in rows.dropFirst() {
            if row.fields.allSatisfy({ $0.isEmpty }) { continue }
            body.append(contentsOf: converter.json(row.fields))
            body.append(0x0A)
            lines.append(row.line)
            if lines.count == size {
                try await send(Batch(body: body, lines: lines))
                body = Data()
                lines = []
            }
        }
        if !lines.isEmpty { try await send(Batch(body: body, lines: lines)) }
    }
}

/// Turns a CSV row into a record's JSON text. Number columns are sent as JSON numbers when they
/// read as one, else as strings, so that the service names the bad field.
struct CSVRecordConverter {
    static let numeric: Set<String> = ["gpu_seconds", "input_tokens", "output_tokens", "cached_input_tokens", "ttft_ms", "tpot_ms", "e2e_ms", "queue_ms"]
    let header: [String]

    func json(_ fields: [String]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        var labels: [(String, String)] = []
        func key(_ k: String) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONText.appendQuoted(k, to: &out)
            out.append(UInt8(ascii: ":"))
        }
        for (i, name) in header.enumerated() where i < fields.count {
            let value = fields[i]
            if value.isEmpty { continue }
            if name.hasPrefix("labels.") {
                labels.append((String(name.dropFirst(7)), value))
            } else if name == "labels" {
                key(name)
                out.append(contentsOf: value.utf8) // a JSON object; the service checks it
            } else if Self.numeric.contains(name), Self.isJSONNumber(value) {
                key(name)
                out.append(contentsOf: value.utf8)
            } else {
                key(name)
                JSONText.appendQuoted(value, to: &out)
            }
        }
        if !labels.isEmpty {
            key("labels")
            JSONText.appendObject(labels, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func isJSONNumber(_ s: String) -> Bool {
        var p = RecordParser(now: WallClock.system.now())
        p.knownAccelerators = nil
        let text = Array("{\"x\":\(s)}".utf8)
        guard (try? p.parse(text, format: .json)) != nil else { return false }
        return s.first != "+" && !s.contains(where: { $0 == " " })
    }
}

/// A one-line progress bar on standard error, drawn only on a terminal.
final class Progress: @unchecked Sendable {
    let enabled: Bool
    init(enabled: Bool) { self.enabled = enabled }

    func update(fraction: Double, totals: IngestClient.Totals, since start: Date) {
        guard enabled else { return }
        let width = 30
        let filled = Int(fraction * Double(width))
        let rate = Double(totals.records) / max(Date().timeIntervalSince(start), 0.001)
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(format: "\r[%@] %3.0f%% %d records, %.0f/s ", bar, fraction * 100, totals.records, rate)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func clear() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
