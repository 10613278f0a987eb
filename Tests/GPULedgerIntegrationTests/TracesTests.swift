import CompressNIO
import Foundation
import GPULedgerCore
import GPULedgerOTLP
import GPULedgerStore
import GPULedgerTestSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import OTLPProto
import SwiftProtobuf
import Testing

/// `POST /v1/traces` (contract section 5, "OpenTelemetry ingest") as a fleet that exports vLLM's
/// spans sees it: records read back with every mapped field, resends stored once, bad spans
/// rejected one by one with their reason, bodies that are not OTLP refused whole.
@Suite struct TracesTests {
    typealias KV = Opentelemetry_Proto_Common_V1_KeyValue

    static func attr(_ key: String, _ value: Any) -> KV {
        var kv = KV()
        kv.key = key
        switch value {
        case let s as String: kv.value.stringValue = s
        case let i as Int: kv.value.intValue = Int64(i)
        case let d as Double: kv.value.doubleValue = d
        default: fatalError("attribute type")
        }
        return kv
    }

    /// A span shaped like vLLM's `llm_request` (vllm/tracing.py), starting `start`.
    static func vllmSpan(id: String?, spanID: UInt8 = 1, start: Timestamp, prompt: Int?, completion: Int = 120,
                         extra: [KV] = [], error: Bool = false) -> Opentelemetry_Proto_Trace_V1_Span {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.name = "llm_request"
        span.kind = .server
        span.traceID = Data((0..<16).map { UInt8($0) })
        span.spanID = Data([0x5f, 0xb3, 0x97, 0xbe, 0x34, 0xd2, 0x6b, spanID])
        span.startTimeUnixNano = UInt64(start.microseconds) * 1000
        span.endTimeUnixNano = span.startTimeUnixNano + 2_500_000_000
        var attributes: [KV] = []
        if let id { attributes.append(attr("gen_ai.request.id", id)) }
        if let prompt { attributes.append(attr("gen_ai.usage.prompt_tokens", prompt)) }
        attributes += [
            attr("gen_ai.usage.completion_tokens", completion),
            attr("gen_ai.request.max_tokens", 512),
            attr("gen_ai.latency.time_to_first_token", 0.25),
            attr("gen_ai.latency.e2e", 2.0),
            attr("gen_ai.latency.time_in_queue", 0.125),
        ]
        span.attributes = attributes + extra
        if error {
            span.status.code = .error
            span.attributes.append(attr("error.type", "timeout"))
        }
        return span
    }

    static func export(_ spans: [Opentelemetry_Proto_Trace_V1_Span], resource: [KV] = [attr("service.name", "meta-llama/Llama-3.1-8B-Instruct")]) -> ExportTraceServiceRequest {
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        scope.scope.name = "vllm.llm_engine"
        scope.spans = spans
        var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        rs.resource.attributes = resource
        rs.scopeSpans = [scope]
        var request = ExportTraceServiceRequest()
        request.resourceSpans = [rs]
        return request
    }

    struct Sent {
        var status: HTTPResponse.Status
        var contentType: String?
        var body: Data
        var response: ExportTraceServiceResponse? {
            contentType == "application/json"
                ? try? ExportTraceServiceResponse(jsonUTF8Data: body)
                : try? ExportTraceServiceResponse(serializedBytes: body)
        }
        var error: [String: Any] {
            ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["error"] as? [String: Any] ?? [:]
        }
    }

    static func send(_ client: some TestClientProtocol, _ body: Data, key: String?, contentType: String = "application/x-protobuf",
                     gzip: Bool = false, contentEncoding: String? = nil) async throws -> Sent {
        var headers: HTTPFields = [.contentType: contentType]
        if let contentEncoding { headers[.contentEncoding] = contentEncoding }
        if let key { headers[.authorization] = "Bearer \(key)" }
        var buffer = ByteBuffer(bytes: body)
        if gzip {
            buffer = try buffer.compress(with: .gzip())
            headers[.contentEncoding] = "gzip"
        }
        return try await client.execute(uri: "/v1/traces", method: .post, headers: headers, body: buffer) { r in
            Sent(status: r.status, contentType: r.headers[.contentType], body: Data(r.body.readableBytesView))
        }
    }

    static let withGPUSeconds = [attr("gpuledger.tenant", "acme"), attr("gpuledger.accelerator", "H100"), attr("gpuledger.gpu_seconds", 1.5),
                                 attr("gpuledger.label.feature", "search")]

    @Test func aVLLMSpanBecomesARecordWithEveryMappedFieldAndItsCost() async throws {
        let t = try await TestApp.make()
        let start = TestClock.recent
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/h100", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand","usd_per_gpu_hour":"3.6"}"#).status == .created)
            let body = try Self.export([Self.vllmSpan(id: "cmpl-1", start: start, prompt: 800,
                                                      extra: Self.withGPUSeconds + [Self.attr("gpuledger.pool", "h100")])]).serializedBytes() as Data
            let sent = try await Self.send(client, body, key: t.ingestKey)
            #expect(sent.status == .ok)
            #expect(sent.contentType == "application/x-protobuf")
            let response = try #require(sent.response)
            #expect(!response.hasPartialSuccess, "an export accepted whole leaves partial_success unset")

            let stored = try await client.get("/v1/usage/acme/cmpl-1", key: t.adminKey)
            #expect(stored.status == .ok, "\(stored.body)")
            let r = stored.json
            #expect(r["model"] as? String == "meta-llama/Llama-3.1-8B-Instruct", "the model from the resource's service.name")
            #expect(r["accelerator"] as? String == "H100")
            #expect(r["started_at"] as? String == start.rfc3339)
            #expect(r["input_tokens"] as? Int == 800)
            #expect(r["output_tokens"] as? Int == 120)
            #expect(r["gpu_seconds"] as? Double == 1.5)
            #expect(r["ttft_ms"] as? Double == 250)
            #expect(r["e2e_ms"] as? Double == 2000)
            // (Foundation's JSON reader may miss the last bit of a double.)
            #expect(abs((r["tpot_ms"] as? Double ?? 0) - (2000.0 - 250) / 119) < 1e-9, "(e2e − ttft) / (output − 1)")
            #expect(r["queue_ms"] as? Double == 125)
            #expect(r["status"] as? String == "ok")
            #expect((r["labels"] as? [String: String]) == ["feature": "search"])
            #expect(r["pool"] as? String == "h100")
            #expect((r["cost_usd"] as? String).flatMap { Decimal(string: $0) } == Decimal(string: "0.0015"), "1.5 GPU-seconds at $3.6/h: \(stored.body)")

            let costs = try await client.get("/v1/costs?from=\(TestClock.month.start.rfc3339)&to=\(TestClock.now.adding(seconds: 1).rfc3339)&group_by=tenant",
                                             key: t.adminKey)
            let rows = costs.json["rows"] as? [[String: Any]] ?? []
            #expect(rows.first?["cost_usd"] as? String == r["cost_usd"] as? String, "\(costs.body)")
        }
    }

    @Test func theSameExportTwiceStoresEachRequestOnce() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let spans = (1...3).map { Self.vllmSpan(id: "r\($0)", spanID: UInt8($0), start: TestClock.recent, prompt: 100 * $0, extra: Self.withGPUSeconds) }
            let body = try Self.export(spans).serializedBytes() as Data
            #expect(try await Self.send(client, body, key: t.ingestKey).status == .ok)
            #expect(try await Self.send(client, body, key: t.ingestKey, gzip: true).status == .ok)
            #expect(try await storedCount(t) == 3)
        }
    }

    @Test func spansWithoutTokensAreIgnoredAndUnmappableOnesRejectedWithTheirReason() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let spans = [
                Self.vllmSpan(id: "good", spanID: 1, start: TestClock.recent, prompt: 10, extra: Self.withGPUSeconds),
                Self.vllmSpan(id: "no-tokens", spanID: 2, start: TestClock.recent, prompt: nil, extra: Self.withGPUSeconds),
                Self.vllmSpan(id: "no-tenant", spanID: 3, start: TestClock.recent, prompt: 10,
                              extra: [Self.attr("gpuledger.accelerator", "H100"), Self.attr("gpuledger.gpu_seconds", 1)]),
                Self.vllmSpan(id: "no-gpu-seconds", spanID: 4, start: TestClock.recent, prompt: 10,
                              extra: [Self.attr("gpuledger.tenant", "acme"), Self.attr("gpuledger.accelerator", "H100")]),
                Self.vllmSpan(id: "failed", spanID: 5, start: TestClock.recent, prompt: 10, extra: Self.withGPUSeconds, error: true),
            ]
            let sent = try await Self.send(client, try Self.export(spans).serializedBytes(), key: t.ingestKey)
            #expect(sent.status == .ok)
            let partial = try #require(sent.response).partialSuccess
            #expect(partial.rejectedSpans == 2)
            #expect(partial.errorMessage.contains("span 2 \"llm_request\" (span id 5fb397be34d26b03): tenant: none found"), "\(partial.errorMessage)")
            #expect(partial.errorMessage.contains("span 3 \"llm_request\" (span id 5fb397be34d26b04): gpu_seconds: is required"), "\(partial.errorMessage)")
            #expect(try await storedCount(t) == 2)
            let failed = try await client.get("/v1/usage/acme/failed", key: t.adminKey).json
            #expect(failed["status"] as? String == "error")
            #expect(failed["error_type"] as? String == "timeout")
            #expect(try await client.get("/v1/usage/acme/no-tokens", key: t.adminKey).status == .notFound)
        }
    }

    @Test func otlpJSONWithHexIdsGzippedAndTheKeysTenantAndTheMappingsFallbacks() async throws {
        let t = try await TestApp.make { config in
            config.otlpMapping = OTLPMapping(defaults: .init(accelerator: "H100"), keys: ["acme ingest": .init(pool: "vllm-a", model: "llama-3.1-8b")])
        }
        try await t.application().test(.router) { client in
            #expect(try await client.put("/v1/pools/vllm-a", key: t.adminKey,
                                         body: #"{"accelerator":"L4","provider":"aws","region":"us-east-1","tier":"on_demand","usd_per_gpu_hour":"0.8","allocation":"tokens"}"#).status == .created)
            // OTLP's JSON: ids in hex, enums as numbers, 64-bit integers as strings.
            let start = UInt64(TestClock.recent.microseconds) * 1000
            let json = """
                {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "vllm"}}]},
                  "scopeSpans": [{"scope": {"name": "vllm"}, "spans": [{
                    "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "llm_request", "kind": 2,
                    "startTimeUnixNano": "\(start)", "endTimeUnixNano": "\(start + 1_000_000_000)",
                    "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "64"}},
                                   {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 16}}],
                    "status": {}}]}]}]}
                """
            let sent = try await Self.send(client, Data(json.utf8), key: t.acmeIngestKey, contentType: "application/json", gzip: true)
            #expect(sent.status == .ok, "\(String(decoding: sent.body, as: UTF8.self))")
            #expect(sent.contentType == "application/json")
            let r = try await client.get("/v1/usage/acme/eee19b7ec3c1b174", key: t.adminKey)
            #expect(r.status == .ok, "the span id in hex is the request id: \(r.body)")
            #expect(r.json["model"] as? String == "llama-3.1-8b", "the key's mapping's model before service.name")
            #expect(r.json["pool"] as? String == "vllm-a")
            #expect(r.json["accelerator"] as? String == "L4", "the pool's accelerator before the mapping's default")
            #expect(r.json["e2e_ms"] as? Double == 1000, "end − start without gen_ai.latency.e2e")
            #expect(r.json["allocation"] as? String == "tokens")
        }
    }

    @Test func bodiesThatAreNotOTLPAreRefusedWholeAndKeysAsForUsage() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let good = try Self.export((1...4).map { Self.vllmSpan(id: "x\($0)", spanID: UInt8($0), start: TestClock.recent, prompt: 10, extra: Self.withGPUSeconds) })
                .serializedBytes() as Data
            let truncated = try await Self.send(client, good.prefix(good.count - 7), key: t.ingestKey)
            #expect(truncated.status == .badRequest)
            #expect((truncated.error["message"] as? String)?.contains("not an OTLP ExportTraceServiceRequest") == true)
            var rng = SplitMix(seed: 7)
            for n in [16, 100, 1000] {
                let random = Data((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
                #expect(try await Self.send(client, random, key: t.ingestKey).status == .badRequest, "\(n) random bytes")
            }
            #expect(try await Self.send(client, Data("{\"resourceSpans\": 3}".utf8), key: t.ingestKey, contentType: "application/json").status == .badRequest)
            #expect(try await Self.send(client, Data("not gzip".utf8), key: t.ingestKey, contentEncoding: "gzip").status == .badRequest)
            #expect(try await storedCount(t) == 0)

            #expect(try await Self.send(client, good, key: nil).status == .unauthorized)
            #expect(try await Self.send(client, good, key: "gpl_wrong").status == .unauthorized)
            #expect(try await Self.send(client, good, key: t.financeKey).status == .forbidden)
            #expect(try await Self.send(client, good, key: t.acmeTenantKey).status == .forbidden)
            #expect(try await Self.send(client, good, key: t.ingestKey, contentType: "text/plain").status == .unsupportedMediaType)
            #expect(try await storedCount(t) == 0)
            // A key bound to acme, a span for globex: refused whole, as /v1/usage does.
            let other = try Self.export([Self.vllmSpan(id: "g", start: TestClock.recent, prompt: 1,
                                                       extra: [Self.attr("gpuledger.tenant", "globex"), Self.attr("gpuledger.accelerator", "H100"),
                                                               Self.attr("gpuledger.gpu_seconds", 1)])]).serializedBytes() as Data
            #expect(try await Self.send(client, other, key: t.acmeIngestKey).status == .forbidden)
            #expect(try await storedCount(t) == 0)
        }
    }
}
