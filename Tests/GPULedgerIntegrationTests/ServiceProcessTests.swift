import Foundation
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import Testing

/// The real `gpuledger` binary, as an operator and the fleet's clients run it.
@Suite(.serialized) struct ServiceProcessTests {
    struct Service {
        var process: ChildProcess
        var port: Int
        var url: String { "http://127.0.0.1:\(port)" }
    }

    func serve(port: Int, dataDir: String, databaseURL: String? = nil, environment extra: [String: String] = [:]) async throws -> Service {
        var env = ["GPULEDGER_LOG_LEVEL": "warning", "DATABASE_URL": databaseURL ?? "", "GPULEDGER_DB_ACQUIRE_TIMEOUT": "60"]
        env.merge(extra) { _, new in new }
        env["GPULEDGER_MIGRATIONS"] = TestDatabase.migrationsDirectory
        let p = try ChildProcess(ChildProcess.gpuledgerBinary, ["serve", "--port", "\(port)", "--data-dir", dataDir], environment: env)
        let service = Service(process: p, port: port)
        try await waitUntil(timeout: .seconds(120), "the service to be ready") {
            if p.hasExited { throw TestFailure("gpuledger serve exited:\n\(p.output)") }
            return await httpStatus(service.url + "/readyz")?.0 == 200
        }
        return service
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    func tempDir() throws -> String {
        let dir = "/tmp/gpl-svc-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func embeddedServiceSurvivesSIGKILLAndStopsItsClusterOnSIGTERM() async throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = freePort()
        let first = try await serve(port: port, dataDir: dir)
        let key = try String(contentsOfFile: dir + "/admin.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/admin.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let posted = await httpStatus(first.url + "/v1/usage", method: "POST", key: key, body: record("survivor"))
        #expect(posted?.0 == 200)
        first.process.signal(SIGKILL)
        try await first.process.wait()

        let second = try await serve(port: port, dataDir: dir)
        #expect(await httpStatus(second.url + "/v1/usage/acme/survivor", key: key)?.0 == 200)
        // The key file is written once, on the first start only.
        #expect(try String(contentsOfFile: dir + "/admin.key", encoding: .utf8).contains(key))
        second.process.signal(SIGTERM)
        #expect(try await second.process.wait() == 0)
        #expect(!FileManager.default.fileExists(atPath: dir + "/pg/data/postmaster.pid"))
    }

    @Test func ingestClientRoundTripsCSVAndNDJSON() async throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try await TestDatabase.create()
        let service = try await serve(port: freePort(), dataDir: dir, databaseURL: try await db.url)
        defer { service.process.signal(SIGTERM) }
        let key = try String(contentsOfFile: dir + "/admin.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let csv = """
            request_id,tenant,model,accelerator,pool,started_at,gpu_seconds,input_tokens,output_tokens,ttft_ms,status,error_type,labels.team
            c1,acme,llama-3.1-8b,L4,,2026-11-01T10:00:00Z,1.25,100,20,35.5,ok,,search
            c2,acme,"llama, quoted",L4,pool-a,2026-11-01T10:00:01Z,0.5,10,2,,error,timeout,
            c3,globex,llama-3.1-8b,H100,,2026-11-01T10:00:02.5Z,3,300,60,,,,ads

            """
        try csv.write(toFile: dir + "/usage.csv", atomically: true, encoding: .utf8)
        let ndjson = (0..<5).map { record("n\($0)") }.joined(separator: "\n") + "\n"
        try ndjson.write(toFile: dir + "/usage.ndjson", atomically: true, encoding: .utf8)

        let args = ["ingest", "--url", service.url, "--key", key, dir + "/usage.csv", dir + "/usage.ndjson"]
        let run = try ChildProcess(ChildProcess.gpuledgerBinary, args)
        #expect(try await run.wait() == 0, "\(run.output)")
        #expect(run.output.contains("8 records sent: 8 accepted, 0 duplicates, 0 conflicts"), "\(run.output)")

        let c2 = await httpStatus(service.url + "/v1/usage/acme/c2", key: key)
        let j = try JSONSerialization.jsonObject(with: Data((c2?.1 ?? "").utf8)) as? [String: Any]
        #expect(j?["model"] as? String == "llama, quoted")
        #expect(j?["pool"] as? String == "pool-a")
        #expect(j?["status"] as? String == "error")
        #expect(j?["error_type"] as? String == "timeout")
        let c1 = try JSONSerialization.jsonObject(with: Data((await httpStatus(service.url + "/v1/usage/acme/c1", key: key)?.1 ?? "").utf8)) as? [String: Any]
        #expect((c1?["labels"] as? [String: String]) == ["team": "search"])
        #expect(c1?["ttft_ms"] as? Double == 35.5)
        #expect(c1?["pool"] is NSNull)

        let again = try ChildProcess(ChildProcess.gpuledgerBinary, args)
        #expect(try await again.wait() == 0)
        #expect(again.output.contains("8 records sent: 0 accepted, 8 duplicates, 0 conflicts"), "\(again.output)")

        // A bad row: refused with its line in the file, exit status 1.
        try (csv + "c4,acme,m,L4,,2026-11-01T10:00:00Z,lots,1,1,,,,\n").write(toFile: dir + "/bad.csv", atomically: true, encoding: .utf8)
        let bad = try ChildProcess(ChildProcess.gpuledgerBinary, ["ingest", "--url", service.url, "--key", key, dir + "/bad.csv"])
        #expect(try await bad.wait() == 1)
        #expect(bad.output.contains("line 5: gpu_seconds: must be a finite number >= 0"), "\(bad.output)")
    }

    @Test func ingestFromStandardInputAndWithABadKey() async throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try await TestDatabase.create()
        let service = try await serve(port: freePort(), dataDir: dir, databaseURL: try await db.url)
        defer { service.process.signal(SIGTERM) }
        try ((0..<3).map { record("s\($0)") }.joined(separator: "\n")).write(toFile: dir + "/in.ndjson", atomically: true, encoding: .utf8)
        let stdin = try ChildProcess(ChildProcess.gpuledgerBinary, ["ingest", "--url", service.url, "-"],
                                     environment: ["GPULEDGER_DATA_DIR": dir], stdinPath: dir + "/in.ndjson")
        #expect(try await stdin.wait() == 0, "\(stdin.output)")
        #expect(stdin.output.contains("3 records sent: 3 accepted"))
        let badKey = try ChildProcess(ChildProcess.gpuledgerBinary, ["ingest", "--url", service.url, "--key", "gpl_wrong", dir + "/in.ndjson"])
        #expect(try await badKey.wait() == 2)
        #expect(badKey.output.contains("HTTP 401"))
        // A --url that is not HTTP is a usage error at once, not a batch retried eight times.
        let notHTTP = try ChildProcess(ChildProcess.gpuledgerBinary, ["ingest", "--url", "ftp://\(service.url.dropFirst(7))", "--key", "k", dir + "/in.ndjson"])
        #expect(try await notHTTP.wait() == 64)
        #expect(notHTTP.output.contains("is not an http:// or https:// URL") && !notHTTP.output.contains("retrying"), "\(notHTTP.output)")
    }

    /// `gpuledger budget check` from a finance script: exit 0 within budget, 1 in the failing
    /// state, 2 on an error. acme uses an H100 hour a day (priced by the repository's rate cards);
    /// the budgets are set from what the ledger says it spent.
    @Test func budgetCheckExitCodes() async throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try await TestDatabase.create()
        let service = try await serve(port: freePort(), dataDir: dir, databaseURL: try await db.url,
                                      environment: ["GPULEDGER_PRICING": TestDatabase.migrationsDirectory + "/../pricing"])
        defer { service.process.signal(SIGTERM) }
        let key = try String(contentsOfFile: dir + "/admin.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let records = (1...20).map { record("d\($0)", ["started_at": "\"\(String(format: "2026-11-%02dT12:00:00Z", $0))\"", "gpu_seconds": "3600"]) }
        #expect(await httpStatus(service.url + "/v1/usage", method: "POST", key: key, body: "[" + records.joined(separator: ",") + "]")?.0 == 200)
        // What the ledger says acme spent in November up to the 21st.
        let costs = await httpStatus(service.url + "/v1/costs?from=2026-11-01&to=2026-11-21&tenant=acme", key: key)
        let total = ((try? JSONSerialization.jsonObject(with: Data((costs?.1 ?? "").utf8))) as? [String: Any])?["total"] as? [String: Any]
        let spent = try #require(Decimal(string: total?["cost_usd"] as? String ?? ""))
        #expect(spent > 0)
        func put(_ name: String, _ amount: Decimal) async {
            let body = #"{"tenant":"acme","period":"monthly","amount_usd":"\#(amount)"}"#
            #expect(await httpStatus(service.url + "/v1/budgets/" + name, method: "PUT", key: key, body: body)?.0 == 201)
        }
        await put("roomy", spent * 10)   // ok
        await put("tight", spent * 5 / 4) // at risk: $1/20 of spent a day for 10 more days goes over
        await put("blown", spent / 2)     // exceeded
        func check(_ args: [String]) async throws -> (Int32, String) {
            let p = try ChildProcess(ChildProcess.gpuledgerBinary, ["budget", "check", "--url", service.url, "--key", key, "--at", "2026-11-21"] + args)
            return (try await p.wait(), p.output)
        }
        let roomy = try await check(["--budget", "roomy"])
        #expect(roomy.0 == 0, "\(roomy.1)")
        #expect(roomy.1.contains("roomy  OK  spent $"), "\(roomy.1)")
        #expect(try await check(["--budget", "tight"]).0 == 0)
        let tight = try await check(["--budget", "tight", "--fail-on", "at_risk"])
        #expect(tight.0 == 1 && tight.1.contains("AT_RISK"), "\(tight.1)")
        let all = try await check(["--all"])
        #expect(all.0 == 1, "\(all.1)")
        #expect(all.1.split(separator: "\n").filter { $0.contains("  spent $") }.count == 3, "\(all.1)")
        #expect(all.1.contains("blown  EXCEEDED"))
        #expect(try await check(["--budget", "nope"]).0 == 2)
        #expect(try await check(["--budget", "roomy", "--fail-on", "warning"]).0 == 2)
        let unreachable = try ChildProcess(ChildProcess.gpuledgerBinary, ["budget", "check", "--url", "http://127.0.0.1:\(freePort())", "--key", key])
        #expect(try await unreachable.wait() == 2)
        #expect(unreachable.output.contains("cannot reach http://127.0.0.1:") && unreachable.output.contains("Connection refused"), "\(unreachable.output)")
    }

    @Test func logsAreJSONLinesWithTheRequestIDAndNoKey() async throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try await TestDatabase.create()
        let service = try await serve(port: freePort(), dataDir: dir, databaseURL: try await db.url,
                                      environment: ["GPULEDGER_LOG_LEVEL": "info", "GPULEDGER_LOG_FORMAT": "json"])
        let key = try String(contentsOfFile: dir + "/admin.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let response = await httpCall(service.url + "/v1/usage", method: "POST", key: key, body: record("logged"),
                                      headers: ["X-Request-Id": "trace-4242"])
        #expect(response?.headers.first(name: "X-Request-Id") == "trace-4242")
        service.process.signal(SIGTERM)
        try await service.process.wait()
        let lines = service.process.output.split(separator: "\n")
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(objects.count == lines.count, "every line is one JSON object")
        let line = objects.first { $0["request_id"] as? String == "trace-4242" && $0["message"] as? String == "request" }
        #expect(line?["method"] as? String == "POST")
        #expect(line?["route"] as? String == "/v1/usage")
        #expect(line?["status"] as? String == "200")
        #expect(line?["duration_ms"] != nil && line?["time"] != nil && line?["level"] as? String == "info")
        // The tenant and the record count of the batch, and which key (its id, never the key).
        #expect(line?["records"] as? String == "1" && line?["tenant"] as? String == "acme")
        #expect(Int(line?["key_id"] as? String ?? "") != nil)
        #expect(objects.contains { $0["request_id"] as? String == "trace-4242" && $0["records"] as? String == "1" })
        #expect(!service.process.output.contains(key))
        #expect(!service.process.output.contains(String(key.dropFirst(4).prefix(16))))
    }

    @Test func aServerRestartedMidFileEndsWithEveryRecordOnce() async throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try await TestDatabase.create()
        let url = try await db.url
        let port = freePort()
        let first = try await serve(port: port, dataDir: dir, databaseURL: url)
        let key = try String(contentsOfFile: dir + "/admin.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let total = 60_000
        try SampleRecords.ndjson(0..<total).write(toFile: dir + "/big.ndjson", atomically: true, encoding: .utf8)
        let ingest = try ChildProcess(ChildProcess.gpuledgerBinary,
                                      ["ingest", "--url", "http://127.0.0.1:\(port)", "--key", key, "--batch-size", "2000", dir + "/big.ndjson"])
        let store = { try await db.withDatabase { d in try await UsageStore(database: d).count() } }
        try await waitUntil(timeout: .seconds(120), "some batches to be stored") { try await store() >= 6_000 }
        first.process.signal(SIGKILL)
        try await first.process.wait()
        let second = try await serve(port: port, dataDir: dir, databaseURL: url)
        defer { second.process.signal(SIGTERM) }
        #expect(try await ingest.wait(timeout: .seconds(300)) == 0, "\(ingest.output)")
        #expect(try await store() == total)
        let summary = ingest.output.split(separator: "\n").last { $0.contains("records sent") }.map(String.init) ?? ""
        #expect(summary.hasPrefix("\(total) records sent:"), "\(ingest.output)")
        #expect(summary.contains("retries"), "\(ingest.output)")
    }
}

@Suite struct PruneCommandTests {
    @Test func deletesOnlyRecordsThatStartedBeforeTheCutoff() async throws {
        let t = try await TestApp.make()
        let body = (0..<7).map { record("old\($0)", ["started_at": "\"2026-10-31T23:59:59.999999Z\""]) }
            + (0..<3).map { record("new\($0)", ["started_at": "\"2026-11-01T00:00:00Z\""]) }
        try await t.application().test(.router) { client in
            let answer = try await client.post("/v1/usage", key: t.ingestKey, body: "[" + body.joined(separator: ",") + "]")
            #expect(answer.json["accepted"] as? Int == 10)
        }
        let prune = try ChildProcess(ChildProcess.gpuledgerBinary, ["prune", "--before", "2026-11-01", "--batch", "2"],
                                     environment: ["DATABASE_URL": try await t.database.url, "GPULEDGER_LOG_LEVEL": "error"])
        #expect(try await prune.wait() == 0, "\(prune.output)")
        #expect(prune.output.contains("deleted 7 usage records that started before 2026-11-01T00:00:00Z"), "\(prune.output)")
        #expect(try await storedCount(t) == 3)
    }
}

@Suite struct KeyCommandTests {
    func run(_ args: [String], _ t: TestApp) async throws -> (Int32, String) {
        let p = try ChildProcess(ChildProcess.gpuledgerBinary, args,
                                 environment: ["DATABASE_URL": try await t.database.url, "GPULEDGER_LOG_LEVEL": "error"])
        let status = try await p.wait()
        return (status, p.output)
    }

    @Test func createListAndRevokeKeys() async throws {
        let t = try await TestApp.make()
        let (created, out) = try await run(["keys", "create", "--role", "tenant", "--tenant", "globex", "--name", "globex reader"], t)
        #expect(created == 0)
        let key = try #require(out.split(separator: "\n").first { $0.hasPrefix("gpl_") }.map(String.init))
        #expect(key.count == 68)
        let (listed, table) = try await run(["keys", "list"], t)
        #expect(listed == 0)
        let row = try #require(table.split(separator: "\n").first { $0.contains("globex reader") })
        #expect(row.contains("\ttenant\tglobex\t"))
        #expect(!table.contains(key), "keys list never shows a secret")
        let id = String(row.split(separator: "\t")[0])

        try await t.application().test(.router) { client in
            let answer = try await client.get("/v1/usage/globex/x", key: key)
            #expect(answer.status == .notFound)
        }
        let (revoked, said) = try await run(["keys", "revoke", id], t)
        #expect(revoked == 0 && said.contains("key #\(id) revoked"))
        try await t.application().test(.router) { client in
            let answer = try await client.get("/v1/usage/globex/x", key: key)
            #expect(answer.status == .unauthorized)
        }
        #expect(try await run(["keys", "revoke", "999999"], t).0 == 1)
        #expect(try await run(["keys", "create", "--role", "tenant"], t).0 != 0)
    }
}
