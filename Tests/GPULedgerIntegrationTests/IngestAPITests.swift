import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct IngestAPITests {
    @Test func acceptsEachBodyShape() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let one = try await client.post("/v1/usage", key: t.ingestKey, body: record("one"))
            #expect(one.status == .ok)
            #expect(one.json["accepted"] as? Int == 1)
            let array = try await client.post("/v1/usage", key: t.ingestKey, body: "[\(record("a1")),\(record("a2"))]")
            #expect(array.json["accepted"] as? Int == 2)
            let wrapped = try await client.post("/v1/usage", key: t.ingestKey, body: "{\"records\":[\(record("w1")),\(record("w2")),\(record("w3"))]}")
            #expect(wrapped.json["accepted"] as? Int == 3)
            let nd = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: record("n1") + "\n" + record("n2") + "\n")
            #expect(nd.json["accepted"] as? Int == 2)
            #expect(nd.json["duplicates"] as? Int == 0)
            #expect((nd.json["conflicts"] as? [String]) == [])
            for id in ["one", "a1", "a2", "w1", "w2", "w3", "n1", "n2"] {
                #expect(try await client.get("/v1/usage/acme/\(id)", key: t.adminKey).status == .ok)
            }
        }
        #expect(try await storedCount(t) == 8)
    }

    @Test func storesEveryFieldAsSent() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let body = record("full", [
                "pool": "\"us-east\"", "cached_input_tokens": "200", "ttft_ms": "120.5", "tpot_ms": "15.25", "e2e_ms": "4620",
                "status": "\"error\"", "error_type": "\"timeout\"", "labels": "{\"team\":\"search\",\"note\":\"tab\\there \\\\ \\\"q\\\"\"}",
                "gpu_seconds": "0.1000000000000000055511151231257827", "started_at": "\"2026-11-01T11:00:00.123456+01:00\"",
            ])
            #expect(try await client.post("/v1/usage", key: t.ingestKey, body: body).status == .ok)
            let got = try await client.get("/v1/usage/acme/full", key: t.financeKey)
            #expect(got.status == .ok)
            let j = got.json
            #expect(j["pool"] as? String == "us-east")
            #expect(j["started_at"] as? String == "2026-11-01T10:00:00.123456Z")
            #expect(got.body.contains("\"gpu_seconds\":0.1000000000000000055511151231257827"))
            #expect(j["cached_input_tokens"] as? Int == 200)
            #expect(j["ttft_ms"] as? Double == 120.5)
            #expect(j["tpot_ms"] as? Double == 15.25)
            #expect(j["status"] as? String == "error")
            #expect(j["error_type"] as? String == "timeout")
            #expect((j["labels"] as? [String: String]) == ["team": "search", "note": "tab\there \\ \"q\""])
            #expect(j.keys.contains("cost_usd") && j["cost_usd"] is NSNull)
        }
    }

    /// COPY's text format escapes backslash, tab, newline and carriage return; a value with them
    /// (and one without, taken whole) comes back as sent.
    @Test func textWithCopyEscapesIsStoredAsSent() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let body = record("escapes", ["status": "\"error\"", "error_type": "\"a\\\\b\\tc\\nd\\re\"", "model": "\"plain-model\""])
            #expect(try await client.post("/v1/usage", key: t.ingestKey, body: body).status == .ok)
            let j = try await client.get("/v1/usage/acme/escapes", key: t.financeKey).json
            #expect(j["error_type"] as? String == "a\\b\tc\nd\re")
            #expect(j["model"] as? String == "plain-model")
        }
    }

    /// Every field rule of contract section 2, over HTTP: 422 naming the field and the index, nothing stored.
    @Test func refusesEachBadFieldAndStoresNothing() async throws {
        let t = try await TestApp.make()
        let cases: [(String, String)] = [
            ("request_id", "\"\""), ("tenant", "\"Not-Valid\""), ("model", "\"\""), ("accelerator", "\"\""),
            ("pool", "\"\""), ("started_at", "\"2099-01-01T00:00:00Z\""), ("gpu_seconds", "-1"),
            ("input_tokens", "-5"), ("output_tokens", "1.5"), ("cached_input_tokens", "5000"), ("ttft_ms", "-1"),
            ("tpot_ms", "\"x\""), ("e2e_ms", "-2"), ("status", "\"maybe\""), ("error_type", "\"oom\""),
            ("labels", "{\"k\":5}"), ("gpu_secnds", "1"),
        ]
        try await t.application().test(.router) { client in
            for (field, value) in cases {
                let body = "[\(record("ok-1")),\(record("ok-2")),\(record("bad", [field: value]))]"
                let answer = try await client.post("/v1/usage", key: t.ingestKey, body: body)
                #expect(answer.status == .unprocessableContent, "\(field)")
                #expect(answer.errorCode == "invalid_records")
                #expect(answer.details.count == 1, "\(field): \(answer.body)")
                #expect(answer.details.first?["index"] as? Int == 2)
                #expect(answer.details.first?["field"] as? String == field)
                #expect((answer.error["message"] as? String)?.contains("nothing was stored") == true)
            }
        }
        #expect(try await storedCount(t) == 0)
    }

    @Test func oneBadRecordAmongTenThousandStoresNothing() async throws {
        let t = try await TestApp.make()
        var lines = (0..<10_000).map { SampleRecords.json($0, tenant: "acme") }
        lines[7_777] = record("bad", ["gpu_seconds": "\"lots\""])
        let body = lines.joined(separator: "\n")
        try await t.application().test(.router) { client in
            let answer = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: body)
            #expect(answer.status == .unprocessableContent)
            #expect(answer.details.map { $0["index"] as? Int } == [7_777])
        }
        #expect(try await storedCount(t) == 0)
    }

    @Test func detailsAreCappedAtOneHundred() async throws {
        let t = try await TestApp.make()
        let body = "[" + (0..<150).map { record("r\($0)", ["tenant": "\"BAD\""]) }.joined(separator: ",") + "]"
        try await t.application().test(.router) { client in
            let answer = try await client.post("/v1/usage", key: t.ingestKey, body: body)
            #expect(answer.details.count == 100)
            #expect((answer.error["message"] as? String)?.contains("150 of 150 records are invalid") == true)
            #expect((answer.error["message"] as? String)?.contains("50 more") == true)
        }
    }

    @Test func sameBatchTwiceIsAllDuplicates() async throws {
        let t = try await TestApp.make()
        let body = SampleRecords.ndjson(0..<500)
        try await t.application().test(.router) { client in
            let first = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: body)
            #expect(first.json["accepted"] as? Int == 500)
            let second = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: body)
            #expect(second.status == .ok)
            #expect(second.json["accepted"] as? Int == 0)
            #expect(second.json["duplicates"] as? Int == 500)
            #expect((second.json["conflicts"] as? [String]) == [])
        }
        #expect(try await storedCount(t) == 500)
    }

    @Test func resendWithChangedContentIsReportedNotApplied() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            _ = try await client.post("/v1/usage", key: t.ingestKey, body: "[\(record("r1")),\(record("r2"))]")
            let resend = "[\(record("r1", ["gpu_seconds": "2.50"])),\(record("r2", ["gpu_seconds": "99"])),\(record("r3"))]"
            let answer = try await client.post("/v1/usage", key: t.ingestKey, body: resend)
            #expect(answer.json["accepted"] as? Int == 1)
            #expect(answer.json["duplicates"] as? Int == 2)
            #expect((answer.json["conflicts"] as? [String]) == ["r2"])
            let stored = try await client.get("/v1/usage/acme/r2", key: t.adminKey)
            #expect(stored.body.contains("\"gpu_seconds\":2.5"))
        }
    }

    @Test func sameRequestTwiceInOneBatchKeepsTheFirst() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let answer = try await client.post("/v1/usage", key: t.ingestKey, body: "[\(record("x", ["output_tokens": "1"])),\(record("x", ["output_tokens": "2"])),\(record("y"))]")
            #expect(answer.json["accepted"] as? Int == 2)
            #expect(answer.json["duplicates"] as? Int == 1)
            #expect((answer.json["conflicts"] as? [String]) == ["x"])
            #expect(try await client.get("/v1/usage/acme/x", key: t.adminKey).json["output_tokens"] as? Int == 1)
        }
    }

    @Test func aStoredRecordSentTwiceInABatchIsComparedEachTime() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            _ = try await client.post("/v1/usage", key: t.ingestKey, body: record("r1"))
            let answer = try await client.post("/v1/usage", key: t.ingestKey,
                                               body: "[\(record("r1")),\(record("r1", ["output_tokens": "9"])),\(record("r2"))]")
            #expect(answer.json["accepted"] as? Int == 1)
            #expect(answer.json["duplicates"] as? Int == 2)
            #expect((answer.json["conflicts"] as? [String]) == ["r1"])
            #expect(try await client.get("/v1/usage/acme/r1", key: t.adminKey).json["output_tokens"] as? Int == 300)
        }
    }

    /// Another transaction commits a record while a batch that holds it goes through the staging
    /// path: the batch's insert waits for that transaction and skips the row, and the row is still
    /// compared with what was committed.
    @Test func aRecordCommittedWhileItsBatchIsStagedIsComparedWithIt() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            _ = try await client.post("/v1/usage", key: t.ingestKey, body: record("r1"))
            let (inserted, signal) = AsyncStream.makeStream(of: Void.self)
            let holder = Task {
                try await t.database.withDatabase { db in
                    try await db.withConnection { conn in
                        try await conn.query("BEGIN", logger: db.logger)
                        try await conn.query(UsageStore.deltasWritten, logger: db.logger)
                        try await conn.query("""
                            WITH rows AS (
                                INSERT INTO usage_records (tenant, request_id, model, accelerator, started_at, gpu_seconds, input_tokens, output_tokens)
                                VALUES ('acme', 'r2', 'llama-3.1-70b', 'H100', '2026-11-01T10:00:00Z', 2.5, 1200, 300)
                                RETURNING \(unescaped: UsageStore.summedColumns)
                            )\(unescaped: UsageStore.deltaCTEs(of: "rows"))
                            SELECT 1
                            """, logger: db.logger)
                        signal.finish()
                        try await waitUntil("the batch to wait for this transaction's record") {
                            let waiting = try await db.withConnection { other in
                                try await other.query("""
                                    SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                                    """, logger: db.logger).collect().first?.decode(Int.self) ?? 0
                            }
                            return waiting > 0
                        }
                        try await conn.query("COMMIT", logger: db.logger)
                    }
                }
            }
            for await _ in inserted {}
            // r1 is stored, so the batch's COPY fails at once and the batch is staged; r2 is not
            // visible to the staging statement until the holder commits.
            let answer = try await client.post("/v1/usage", key: t.ingestKey,
                                               body: "[\(record("r1")),\(record("r2", ["output_tokens": "7"])),\(record("r3"))]")
            try await holder.value
            #expect(answer.json["accepted"] as? Int == 1)
            #expect(answer.json["duplicates"] as? Int == 2)
            #expect((answer.json["conflicts"] as? [String]) == ["r2"])
            #expect(try await client.get("/v1/usage/acme/r2", key: t.adminKey).json["output_tokens"] as? Int == 300)
            #expect(try await client.get("/v1/usage/acme/r3", key: t.adminKey).status == .ok)
        }
    }

    @Test func sameRequestIDUnderTwoTenantsIsTwoRecords() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let answer = try await client.post("/v1/usage", key: t.ingestKey, body: "[\(record("x", tenant: "acme")),\(record("x", tenant: "globex"))]")
            #expect(answer.json["accepted"] as? Int == 2)
        }
    }

    @Test func rolesAgainstIngest() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let none = try await client.post("/v1/usage", key: nil, body: record("r"))
            #expect(none.status == .unauthorized)
            #expect(none.headers[.wwwAuthenticate] == "Bearer")
            #expect(try await client.post("/v1/usage", key: "gpl_0000", body: record("r")).status == .unauthorized)
            #expect(try await client.post("/v1/usage", key: t.acmeTenantKey, body: record("r")).status == .forbidden)
            #expect(try await client.post("/v1/usage", key: t.financeKey, body: record("r")).status == .forbidden)
            let other = try await client.post("/v1/usage", key: t.acmeIngestKey, body: "[\(record("a")),\(record("g", tenant: "globex"))]")
            #expect(other.status == .forbidden)
            #expect(other.errorCode == "forbidden")
            #expect(try await client.post("/v1/usage", key: t.acmeIngestKey, body: record("a")).status == .ok)
            #expect(try await client.post("/v1/usage", key: t.adminKey, body: record("g", tenant: "globex")).status == .ok)
        }
        #expect(try await storedCount(t) == 2)
    }

    @Test func readingARecordFollowsTenantIsolation() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            _ = try await client.post("/v1/usage", key: t.ingestKey, body: "[\(record("a")),\(record("g", tenant: "globex"))]")
            #expect(try await client.get("/v1/usage/acme/a", key: t.acmeTenantKey).status == .ok)
            #expect(try await client.get("/v1/usage/globex/g", key: t.acmeTenantKey).status == .forbidden)
            #expect(try await client.get("/v1/usage/globex/g", key: t.financeKey).status == .ok)
            #expect(try await client.get("/v1/usage/globex/g", key: t.ingestKey).status == .forbidden)
            #expect(try await client.get("/v1/usage/acme/missing", key: t.adminKey).status == .notFound)
            #expect(try await client.get("/v1/usage/acme/a", key: nil).status == .unauthorized)
        }
    }

    @Test func malformedBodiesSayWhere() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let nd = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: record("a") + "\n" + "{\"tenant\":\n")
            #expect(nd.status == .badRequest)
            #expect(nd.errorCode == "malformed_json")
            #expect(nd.details.first?["line"] as? Int == 2)
            let js = try await client.post("/v1/usage", key: t.ingestKey, body: "[" + record("a") + ",]")
            #expect(js.status == .badRequest)
            #expect((js.error["message"] as? String)?.contains("byte offset") == true)
            #expect(js.details.first?["offset"] as? Int == record("a").utf8.count + 2)
        }
        #expect(try await storedCount(t) == 0)
    }

    @Test func contentTypeAndSizeLimits() async throws {
        let t = try await TestApp.make { $0.maxBodyBytes = 2_000; $0.maxRecordsPerRequest = 3 }
        try await t.application().test(.router) { client in
            let text = try await client.post("/v1/usage", key: t.ingestKey, contentType: "text/plain", body: record("a"))
            #expect(text.status == .unsupportedMediaType)
            #expect(try await client.post("/v1/usage", key: t.ingestKey, contentType: nil, body: record("a")).status == .unsupportedMediaType)
            #expect(try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/json; charset=utf-8", body: record("a")).status == .ok)
            let big = "[" + (0..<20).map { record("b\($0)") }.joined(separator: ",") + "]"
            let tooBig = try await client.post("/v1/usage", key: t.ingestKey, body: big)
            #expect(tooBig.status == .contentTooLarge)
            #expect(tooBig.errorCode == "body_too_large")
            let many = "[" + (0..<4).map { record("m\($0)") }.joined(separator: ",") + "]"
            let tooMany = try await client.post("/v1/usage", key: t.ingestKey, body: many)
            #expect(tooMany.status == .contentTooLarge)
            #expect(tooMany.errorCode == "too_many_records")
        }
        #expect(try await storedCount(t) == 1)
    }

    @Test func recordsSurviveARestartOfTheService() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let answer = try await client.post("/v1/usage", key: t.ingestKey, body: record("durable"))
            #expect(answer.status == .ok)
        }
        // A new application on the same database: what a restart of the service sees.
        try await t.application().test(.router) { client in
            let got = try await client.get("/v1/usage/acme/durable", key: t.adminKey)
            #expect(got.status == .ok)
            #expect(got.json["output_tokens"] as? Int == 300)
        }
    }

    @Test func healthReadinessAndRequestIDs() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            #expect(try await client.get("/healthz", key: nil).status == .ok)
            let ready = try await client.get("/readyz", key: nil)
            #expect(ready.status == .ok)
            #expect(ready.json["status"] as? String == "ready")
            let echoed = try await client.get("/healthz", key: nil, headers: [HTTPField.Name("X-Request-Id")!: "trace-42"])
            #expect(echoed.headers[HTTPField.Name("X-Request-Id")!] == "trace-42")
            let made = try await client.get("/nope", key: nil)
            #expect(made.status == .notFound)
            #expect(made.errorCode == "not_found")
            #expect((made.headers[HTTPField.Name("X-Request-Id")!] ?? "").isEmpty == false)
        }
    }
}

@Suite struct IngestWithRateCardsTests {
    @Test func acceleratorsMustBeNamedInTheRateCards() async throws {
        let t = try await TestApp.make { $0.knownAccelerators = ["H100", "L4"] }
        try await t.application().test(.router) { client in
            let answer = try await client.post("/v1/usage", key: t.ingestKey, body: "[\(record("a")),\(record("b", ["accelerator": "\"H1OO\""]))]")
            #expect(answer.status == .unprocessableContent)
            #expect(answer.details.first?["field"] as? String == "accelerator")
            #expect((answer.details.first?["message"] as? String)?.contains("H100, L4") == true)
        }
        #expect(try await storedCount(t) == 0)
    }
}
