import AsyncHTTPClient
import Foundation
import GPULedgerCore
import GPULedgerStore
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO

/// The release `gpuledger serve` on its embedded PostgreSQL in a temporary folder, with a
/// direct connection to that database for loading data: what the benchmark programs measure.
public final class BenchmarkService: @unchecked Sendable {
    public let dir: String
    public let base: String
    public let key: String
    public let serve: ChildProcess
    public let db: Database
    public let logger: Logger
    let client: PostgresClient
    let clientTask: Task<Void, Never>

    /// Starts `binary serve` in `/tmp/gpl-bench-<name>-<pid>` with an empty rate-card folder
    /// (the benchmark loads its own rates); exits 2 when it cannot.
    public init(name: String, binary: String, arguments: [String] = []) async throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            FileHandle.standardOutput.write(Data("no \(binary): build it first with swift build -c release\n".utf8))
            exit(2)
        }
        dir = "/tmp/gpl-bench-\(name)-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/pricing", withIntermediateDirectories: true)
        try "accelerator,provider,region,tier\n".write(toFile: dir + "/pricing/defaults.csv", atomically: true, encoding: .utf8)
        let port = freePort()
        serve = try ChildProcess(binary, ["serve", "--port", "\(port)", "--data-dir", dir, "--pricing", dir + "/pricing"] + arguments,
                                 environment: ["GPULEDGER_LOG_LEVEL": "warning"])
        base = "http://127.0.0.1:\(port)"
        let serve = self.serve, base = self.base
        try await waitUntil(timeout: .seconds(180), "the service") {
            if serve.hasExited { FileHandle.standardOutput.write(Data(serve.output.utf8)); exit(2) }
            return await httpStatus(base + "/readyz")?.0 == 200
        }
        key = try String(contentsOfFile: dir + "/admin.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        self.logger = logger
        let cluster = EmbeddedPostgres(dataDirectory: dir, logger: logger)
        let client = PostgresClient(configuration: cluster.clientConfiguration(), backgroundLogger: logger)
        self.client = client
        clientTask = Task { await client.run() }
        db = Database(client: client, logger: logger, acquireTimeout: .seconds(60))
    }

    /// Stops the service (and with it its PostgreSQL) and exits 2.
    public func fail(_ message: String) async -> Never {
        FileHandle.standardOutput.write(Data((message + "\n").utf8))
        await stop(keep: false)
        exit(2)
    }

    /// Runs `insert` (an `INSERT INTO usage_records … SELECT …`) with the summary deltas of the
    /// rows it inserts, as every writer of usage_records must (sql/0014), or fails.
    public func insertRecords(_ insert: String) async {
        do {
            let logger = self.logger
            try await db.withTransaction { conn in
                _ = try await conn.query(UsageStore.deltasWritten, logger: logger)
                let sql = "WITH rows AS (\(insert) RETURNING \(UsageStore.summedColumns))\(UsageStore.deltaCTEs(of: "rows")) SELECT count(*) FROM rows"
                _ = try await conn.query(PostgresQuery(unsafeSQL: sql), logger: logger)
            }
        } catch {
            await fail("SQL failed: \(String(reflecting: error))\n\(insert.prefix(300))")
        }
    }

    /// Waits until the service's background runner has kept every whole past hour's summaries
    /// (latency sketches, labels: sql/0017), as it does within seconds of each fold; the seconds waited.
    public func waitForHourSummaries(limit: Duration = .seconds(1800)) async -> Double {
        let start = ContinuousClock.now
        let logger = self.logger
        while true {
            do {
                let left = try await db.withConnection { conn in
                    var n: Int64 = 0
                    for try await c in try await conn.query("""
                        SELECT count(*) FROM hour_summaries_dirty WHERE hour < date_trunc('hour', now(), 'UTC')
                        """, logger: logger).decode(Int64.self) { n = c }
                    return n
                }
                if left == 0 { return milliseconds(ContinuousClock.now - start) / 1000 }
            } catch {
                await fail("SQL failed: \(String(reflecting: error))")
            }
            if ContinuousClock.now - start > limit { await fail("the hour summaries were not kept within \(limit)") }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Folds every summary delta a load left (the service folds them every second) before measuring.
    public func foldSummaries() async {
        await sql("DO $$ BEGIN WHILE EXISTS (SELECT 1 FROM usage_delta) LOOP PERFORM usage_fold(); PERFORM pg_sleep(0.05); END LOOP; END $$")
    }

    /// A rate of a benchmark's rate card: provider, region, accelerator, tier, USD per GPU-hour,
    /// effective from (a date).
    public typealias CardRate = (provider: String, region: String, accelerator: String, tier: String, usd: Decimal, from: String)

    /// Writes `rates` as the rate card `name`.csv and `defaults` (accelerator → provider, region,
    /// tier) as defaults.csv into the service's pricing folder, and loads them the way an operator
    /// does (`POST /v1/rates/reload`), or fails. Rates put into the table with SQL were dropped
    /// by the next start's load of the folder, so a service kept with `--keep` lost them on restart.
    public func loadRateCard(_ name: String, rates: [CardRate], defaults: [(accelerator: String, provider: String, region: String, tier: String)]) async {
        var card = RateCards.columns.joined(separator: ",") + "\n"
        for r in rates { card += "\(r.provider),\(r.region),\(r.accelerator),\(r.tier),\(r.usd),\(r.from),benchmark\n" }
        var defaultsCSV = RateCards.defaultsColumns.joined(separator: ",") + "\n"
        for d in defaults { defaultsCSV += "\(d.accelerator),\(d.provider),\(d.region),\(d.tier)\n" }
        do {
            try card.write(toFile: dir + "/pricing/\(name).csv", atomically: true, encoding: .utf8)
            try defaultsCSV.write(toFile: dir + "/pricing/" + RateCards.defaultsFile, atomically: true, encoding: .utf8)
        } catch {
            await fail("cannot write the rate card: \(error)")
        }
        let answer = await httpStatus(base + "/v1/rates/reload", method: "POST", key: key, body: "")
        guard let answer, answer.0 == 200 else {
            await fail("POST /v1/rates/reload failed: \(answer.map { "\($0.0) \($0.1)" } ?? "no answer")")
        }
    }

    /// Runs one SQL statement, or fails.
    public func sql(_ text: String) async {
        do {
            let logger = self.logger
            try await db.withConnection { conn in _ = try await conn.query(PostgresQuery(unsafeSQL: text), logger: logger) }
        } catch {
            await fail("SQL failed: \(String(reflecting: error))\n\(text.prefix(300))")
        }
    }

    /// A GET with the admin key (or, given a console session's `cookie`, with that): status and body.
    public func get(_ path: String, cookie: String? = nil) async throws -> (Int, Data) {
        // AsyncHTTPClient: Foundation's URLSession on Linux keeps a CPU busy while it waits, and
        // here the client, the service and PostgreSQL share two cores.
        var request = HTTPClientRequest(url: base + path)
        if let cookie { request.headers.add(name: "Cookie", value: cookie) } else { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
        let body = try await response.body.collect(upTo: 512 * 1024 * 1024)
        return (Int(response.status.code), Data(buffer: body))
    }

    /// Stops the service and removes its folder unless `keep`.
    public func stop(keep: Bool) async {
        clientTask.cancel()
        if keep { return }
        serve.signal(SIGTERM)
        _ = try? await serve.wait(timeout: .seconds(60))
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// Milliseconds in a duration.
public func milliseconds(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }

/// p50 and p95 (nearest rank) of `xs`.
public func percentiles(_ xs: [Double]) -> (p50: Double, p95: Double) {
    let s = xs.sorted()
    return (s[(s.count - 1) / 2], s[min(s.count - 1, Int((Double(s.count) * 0.95).rounded(.up)) - 1)])
}

/// p50 and p95 of `runs` timed calls of `body` (after one untimed warm-up call when `warmUp`).
public func timed(_ runs: Int, warmUp: Bool = true, _ body: () async throws -> Void) async throws -> (p50: Double, p95: Double) {
    if warmUp { try await body() }
    var xs: [Double] = []
    for _ in 0..<runs {
        let t0 = ContinuousClock.now
        try await body()
        xs.append(milliseconds(ContinuousClock.now - t0))
    }
    return percentiles(xs)
}
