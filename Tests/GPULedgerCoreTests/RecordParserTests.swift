import Foundation
import GPULedgerCore
import GPULedgerTestSupport
import Testing

/// A record's JSON (see `SampleRecords.record`).
func recordJSON(_ overrides: [String: String?] = [:]) -> String { SampleRecords.record("req-1", overrides) }

let parseNow = Timestamp.parseRFC3339("2026-11-28T12:00:00Z")!

func parse(_ body: String, _ format: BodyFormat = .json, accelerators: Set<String>? = nil) throws(MalformedBody) -> ParsedBatch {
    try RecordParser(now: parseNow, knownAccelerators: accelerators).parse(Array(body.utf8), format: format)
}

@Suite struct RecordParserTests {
    @Test func parsesAFullRecord() throws {
        let body = recordJSON([
            "pool": "\"us-east-h100\"", "cached_input_tokens": "200", "ttft_ms": "120.5", "tpot_ms": "15", "e2e_ms": "4620",
            "status": "\"error\"", "error_type": "\"timeout\"", "labels": "{\"team\":\"search\",\"env\":\"prod\"}",
        ])
        let batch = try parse(body)
        #expect(batch.errors.isEmpty)
        let r = try #require(batch.records.first)
        #expect(r.requestID == "req-1" && r.tenant == "acme" && r.model == "llama-3.1-70b" && r.accelerator == "H100")
        #expect(r.pool == "us-east-h100")
        #expect(r.startedAt == Timestamp.parseRFC3339("2026-11-01T10:00:00Z"))
        #expect(r.gpuSeconds == "2.5")
        #expect(r.inputTokens == 1200 && r.outputTokens == 300 && r.cachedInputTokens == 200)
        #expect(r.ttftMs == 120.5 && r.tpotMs == 15 && r.e2eMs == 4620)
        #expect(r.status == .error && r.errorType == "timeout")
        #expect(r.labels == [.init("team", "search"), .init("env", "prod")])
        #expect(r.labelsJSON == "{\"team\":\"search\",\"env\":\"prod\"}")
    }

    @Test func acceptsEachBodyShape() throws {
        let a = recordJSON(), b = recordJSON(["request_id": "\"req-2\""])
        #expect(try parse(a).records.count == 1)
        #expect(try parse("[\(a), \(b)]").records.map(\.requestID) == ["req-1", "req-2"])
        #expect(try parse(" { \"records\" : [\(a),\(b)] } ").records.count == 2)
        #expect(try parse("\(a)\n\n\(b)\r\n", .ndjson).records.count == 2)
        #expect(try parse("[]").count == 0)
        #expect(try parse("", .ndjson).count == 0)
    }

    @Test func defaultsAndNulls() throws {
        let r = try #require(try parse(recordJSON(["pool": "null", "status": "null", "labels": "null", "ttft_ms": "null"])).records.first)
        #expect(r.pool == nil && r.status == .ok && r.labels.isEmpty && r.ttftMs == nil)
    }

    /// Every field rule of contract section 2: a bad value gives an error naming that field.
    @Test(arguments: [
        ("request_id", "\"\""), ("request_id", "\"\(String(repeating: "x", count: 129))\""), ("request_id", "17"), ("request_id", "null"),
        ("tenant", "\"Acme\""), ("tenant", "\"-acme\""), ("tenant", "\"\(String(repeating: "a", count: 64))\""), ("tenant", "\"ac me\""), ("tenant", "\"\""),
        ("model", "\"\""), ("model", "\"\(String(repeating: "m", count: 129))\""), ("model", "[]"),
        ("accelerator", "\"\""), ("accelerator", "\"\(String(repeating: "a", count: 65))\""), ("accelerator", "true"),
        ("pool", "\"\""), ("pool", "\"\(String(repeating: "p", count: 65))\""), ("pool", "3"),
        ("started_at", "\"yesterday\""), ("started_at", "\"2026-11-28T12:05:01Z\""), ("started_at", "1795860000"), ("started_at", "\"2026-11-28\""),
        ("gpu_seconds", "-0.5"), ("gpu_seconds", "\"2.5\""), ("gpu_seconds", "1e400"), ("gpu_seconds", "null"),
        ("input_tokens", "-1"), ("input_tokens", "1.5"), ("input_tokens", "\"5\""), ("input_tokens", "1e3"), ("input_tokens", "99999999999999999999"), ("input_tokens", "9999999999999999999"), ("input_tokens", "9223372036854775808"),
        ("output_tokens", "-3"), ("output_tokens", "2.0"),
        ("cached_input_tokens", "-1"), ("cached_input_tokens", "1201"), ("cached_input_tokens", "0.5"),
        ("ttft_ms", "-1"), ("ttft_ms", "\"fast\""), ("tpot_ms", "-0.001"), ("e2e_ms", "1e999"),
        ("status", "\"failed\""), ("status", "\"OK\""), ("status", "1"),
        ("error_type", "\"\""), ("error_type", "\"\(String(repeating: "e", count: 65))\""),
        ("labels", "[]"), ("labels", "\"team=a\""), ("labels", "{\"team\":1}"), ("labels", "{\"\":\"x\"}"),
        ("labels", "{\"k\":\"\(String(repeating: "v", count: 257))\"}"), ("labels", "{\"\(String(repeating: "k", count: 65))\":\"v\"}"),
        ("labels", "{" + (0..<33).map { "\"k\($0)\":\"v\"" }.joined(separator: ",") + "}"),
        ("labels", "{\"a\":\"1\",\"a\":\"2\"}"),
    ])
    func refusesABadValue(field: String, value: String) throws {
        var overrides: [String: String?] = [field: value]
        if field == "error_type" { overrides["status"] = "\"error\"" }
        let batch = try parse("[\(recordJSON()), \(recordJSON(overrides))]")
        #expect(batch.invalidRecords == 1)
        #expect(batch.errors.count == 1)
        #expect(batch.errors.first?.index == 1)
        #expect(batch.errors.first?.field == field)
    }

    @Test func requiredFieldsAreNamedWhenMissing() throws {
        for field in ["request_id", "tenant", "model", "accelerator", "started_at", "gpu_seconds", "input_tokens", "output_tokens"] {
            let batch = try parse(recordJSON([field: nil]))
            #expect(batch.errors == [FieldError(index: 0, field: field, message: "is required")])
        }
    }

    @Test func errorTypeNeedsErrorStatus() throws {
        let batch = try parse(recordJSON(["error_type": "\"oom\""]))
        #expect(batch.errors.map(\.field) == ["error_type"])
        #expect(try parse(recordJSON(["error_type": "\"oom\"", "status": "\"error\""])).errors.isEmpty)
    }

    @Test func unknownAndRepeatedFieldsAreRefused() throws {
        let unknown = try parse(recordJSON(["gpu_secs": "1"]))
        #expect(unknown.errors.map(\.field) == ["gpu_secs"])
        #expect(unknown.errors.first?.message.hasPrefix("unknown field") == true)
        let repeated = try parse("{\"tenant\":\"a\"," + recordJSON().dropFirst())
        #expect(repeated.errors.map(\.field) == ["tenant"])
    }

    @Test func escapedFieldNamesStillMatch() throws {
        let body = recordJSON().replacingOccurrences(of: "\"tenant\"", with: "\"ten\\u0061nt\"")
        #expect(try parse(body).records.first?.tenant == "acme")
    }

    @Test func acceleratorMustBeKnownWhenRateCardsAreLoaded() throws {
        let known: Set<String> = ["H100", "A100"]
        #expect(try parse(recordJSON(), accelerators: known).errors.isEmpty)
        let batch = try parse(recordJSON(["accelerator": "\"H101\""]), accelerators: known)
        #expect(batch.errors.map(\.field) == ["accelerator"])
        #expect(batch.errors.first?.message.contains("A100, H100") == true)
    }

    @Test func nonObjectRecordsAreFieldErrors() throws {
        let batch = try parse("[\(recordJSON()), 42, \"x\"]")
        #expect(batch.errors.map(\.index) == [1, 2])
        #expect(batch.errors.allSatisfy { $0.field == "record" })
    }

    @Test func stringsDecodeEscapesAndUnicode() throws {
        let r = try #require(try parse(recordJSON(["request_id": "\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00/\\/\"", "model": "\"modèle\""])).records.first)
        #expect(r.requestID == "a\"b\\c\né😀//")
        #expect(r.model == "modèle")
    }

    @Test func characterLimitsCountCharactersNotBytes() throws {
        let r = try parse(recordJSON(["request_id": "\"\(String(repeating: "é", count: 128))\""]))
        #expect(r.errors.isEmpty)
    }

    @Test func nulCharactersAreRefused() throws {
        let batch = try parse(recordJSON(["model": "\"a\\u0000b\""]))
        #expect(batch.errors.map(\.field) == ["model"])
    }

    @Test func everyErrorOfEveryRecordIsReported() throws {
        let body = "[" + (0..<5).map { recordJSON(["request_id": "\"r\($0)\"", "tenant": $0 % 2 == 0 ? "\"BAD\"" : "\"ok\"", "gpu_seconds": "-1"]) }.joined(separator: ",") + "]"
        let batch = try parse(body)
        #expect(batch.invalidRecords == 5)
        #expect(batch.errors.count == 8)
        #expect(batch.records.isEmpty)
    }

    @Test func tokenCountsUpToInt64Max() throws {
        #expect(try parse(recordJSON(["input_tokens": "9223372036854775807", "cached_input_tokens": "0"])).records.first?.inputTokens == Int64.max)
    }

    @Test func gpuSecondsKeepsItsExactDecimalText() throws {
        #expect(try parse(recordJSON(["gpu_seconds": "0.1000000000000000055511"])).records.first?.gpuSeconds == "0.1000000000000000055511")
        #expect(try parse(recordJSON(["gpu_seconds": "-0"])).records.first?.gpuSeconds == "0")
        #expect(try parse(recordJSON(["gpu_seconds": "1.5E2"])).records.first?.gpuSeconds == "1.5E2")
    }
}

@Suite struct MalformedBodyTests {
    func malformed(_ body: String, _ format: BodyFormat = .json) -> MalformedBody? {
        do {
            _ = try parse(body, format)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [
        "", "   ", "{", "[", "[1,]", "{\"tenant\":\"a\",}", "{\"tenant\" \"a\"}", "{tenant:\"a\"}", "{\"tenant\":'a'}",
        "{\"gpu_seconds\":01}", "{\"gpu_seconds\":1.}", "{\"gpu_seconds\":.5}", "{\"gpu_seconds\":+1}", "{\"gpu_seconds\":1e}",
        "{\"gpu_seconds\":NaN}", "{\"gpu_seconds\":Infinity}", "{\"x\":tru}", "{\"x\":\"a\u{01}b\"}", "{\"x\":\"\\q\"}", "{\"x\":\"\\ud800\"}",
        "{} {}", "[] x", "{\"records\": 5}", "{\"records\": [], \"extra\": 1}", "nul", "\"just a string\"", "7",
    ])
    func refusesMalformedJSON(_ body: String) {
        #expect(malformed(body) != nil)
    }

    @Test func namesTheByteOffset() throws {
        let body = "[" + recordJSON() + ", {\"tenant\": acme}]"
        let e = try #require(malformed(body))
        #expect(e.line == nil)
        #expect(e.offset == body.utf8.count - 6)
        #expect(e.description.contains("byte offset \(body.utf8.count - 6)"))
    }

    @Test func namesTheLineForNDJSON() throws {
        let body = [recordJSON(), "", recordJSON(), "{\"tenant\": }", recordJSON()].joined(separator: "\n")
        let e = try #require(malformed(body, .ndjson))
        #expect(e.line == 4)
        #expect(e.description.hasPrefix("malformed JSON on line 4"))
    }

    @Test func ndjsonRefusesTwoRecordsOnALine() throws {
        let e = try #require(malformed(recordJSON() + " " + recordJSON(), .ndjson))
        #expect(e.line == 1)
    }

    @Test func refusesInvalidUTF8() throws {
        var bytes = Array(recordJSON().utf8)
        let i = try #require(bytes.firstIndex(of: UInt8(ascii: "l"))) // inside "llama…"
        bytes[i] = 0xFF
        #expect(throws: MalformedBody.self) { try RecordParser(now: parseNow).parse(bytes, format: .json) }
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(malformed("{\"labels\":\(deep)}") != nil)
    }
}
