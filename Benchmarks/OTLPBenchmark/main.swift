// The OTLP ingest benchmark: not a test. It prints figures.
//
//   swift build -c release && .build/release/gpuledger-bench-otlp [--records 100000] [--spans 10000] [--rounds 3]
//
// The same records (SampleRecords: 50 tenants, 10 models, 4 accelerators, a month) as NDJSON
// batches for POST /v1/usage and as OTLP/HTTP protobuf exports of `--spans` spans each for POST
// /v1/traces (one span per record, with gpuledger's and the GenAI conventions' attributes):
// 1. In process: records per second through RecordParser (NDJSON) and through the protobuf
//    decoder, the span mapping and RecordParser (OTLP), and the ratio.
// 2. Over HTTP, against the release `gpuledger serve` on its embedded PostgreSQL: records per
//    second stored each way (rounds interleaved, fresh request ids each round), and the ratio.
import Foundation
import GPULedgerCore
import GPULedgerOTLP
import GPULedgerTestSupport
import OTLPProto
import SwiftProtobuf

checkArguments(program: "gpuledger-bench-otlp", source: "Benchmarks/OTLPBenchmark/main.swift",
               values: ["--records", "--spans", "--rounds", "--binary"])

func print(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

let total = option("--records", 100_000)
let perExport = option("--spans", 10_000)
let rounds = option("--rounds", 3)
let binary = stringOption("--binary", ".build/release/gpuledger")

typealias KV = Opentelemetry_Proto_Common_V1_KeyValue
func kv(_ key: String, _ s: String) -> KV { var a = KV(); a.key = key; a.value.stringValue = s; return a }
func kv(_ key: String, _ i: Int64) -> KV { var a = KV(); a.key = key; a.value.intValue = i; return a }
func kv(_ key: String, _ d: Double) -> KV { var a = KV(); a.key = key; a.value.doubleValue = d; return a }

/// The round's batches both ways: NDJSON bodies and protobuf exports of the same records.
func bodies(round: Int) throws -> (ndjson: [[UInt8]], otlp: [[UInt8]]) {
    let parser = RecordParser(now: Timestamp(secondsSince1970: 4_000_000_000))
    var ndjson: [[UInt8]] = [], otlp: [[UInt8]] = []
    for first in stride(from: 0, to: total, by: perExport) {
        let range = first..<min(total, first + perExport)
        let nd = range.map { SampleRecords.json($0, requestID: "n\(round)-\($0)") }.joined(separator: "\n") + "\n"
        ndjson.append(Array(nd.utf8))
        let records = try parser.parse(Array((range.map { SampleRecords.json($0, requestID: "o\(round)-\($0)") }.joined(separator: "\n")).utf8), format: .ndjson).records
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        scope.spans = records.enumerated().map { i, r in
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.name = "llm_request"
            span.kind = .server
            span.traceID = Data((0..<16).map { _ in UInt8(truncatingIfNeeded: i &* 31) })
            span.spanID = Data((0..<8).map { UInt8(truncatingIfNeeded: (first + i) >> ($0 * 8)) })
            span.startTimeUnixNano = UInt64(r.startedAt.microseconds) * 1000
            span.endTimeUnixNano = span.startTimeUnixNano + UInt64((r.e2eMs ?? 1000) * 1_000_000)
            var a = [kv("gen_ai.request.id", r.requestID), kv("gpuledger.tenant", r.tenant), kv("gen_ai.response.model", r.model),
                     kv("gpuledger.accelerator", r.accelerator), kv("gpuledger.pool", r.pool ?? ""),
                     kv("gpuledger.gpu_seconds", Double(r.gpuSeconds ?? "0") ?? 0),
                     kv("gen_ai.usage.input_tokens", r.inputTokens), kv("gen_ai.usage.output_tokens", r.outputTokens),
                     kv("gen_ai.usage.cached_input_tokens", r.cachedInputTokens ?? 0),
                     kv("gen_ai.latency.time_to_first_token", (r.ttftMs ?? 0) / 1000), kv("gen_ai.latency.e2e", (r.e2eMs ?? 0) / 1000)]
            a += r.labels.map { kv("gpuledger.label." + $0.key, $0.value) }
            span.attributes = a
            if r.status == .error { span.status.code = .error; span.attributes.append(kv("error.type", r.errorType ?? "x")) }
            return span
        }
        var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        rs.resource.attributes = [kv("service.name", "vllm")]
        rs.scopeSpans = [scope]
        var request = ExportTraceServiceRequest()
        request.resourceSpans = [rs]
        otlp.append(try request.serializedBytes())
    }
    return (ndjson, otlp)
}

print("generating \(total) records as \(total / perExport) NDJSON batches and OTLP exports of \(perExport) spans…")
let sample = try bodies(round: 0)
print("  NDJSON \(sample.ndjson.reduce(0) { $0 + $1.count } / total) bytes per record, OTLP protobuf \(sample.otlp.reduce(0) { $0 + $1.count } / total) bytes per span")

// 1. In process.
do {
    let parser = RecordParser(now: Timestamp(secondsSince1970: 4_000_000_000))
    var best = (nd: 0.0, ot: 0.0, decode: 0.0, map: 0.0)
    for _ in 0..<3 {
        // The OTLP path's stages on their own: protobuf decoding, then decoding and mapping.
        var t = ContinuousClock.now
        var spans = 0
        for b in sample.otlp { spans += try TraceExport.decode(Data(b), as: .protobuf).resourceSpans.reduce(0) { $0 + $1.scopeSpans.reduce(0) { $0 + $1.spans.count } } }
        best.decode = max(best.decode, Double(spans) / seconds(ContinuousClock.now - t))
        t = ContinuousClock.now
        spans = 0
        let m = SpanMapper(fallbacks: .init(), boundTenant: nil, poolAccelerators: [:])
        for b in sample.otlp { spans += m.map(try TraceExport.decode(Data(b), as: .protobuf)).candidates.count }
        best.map = max(best.map, Double(spans) / seconds(ContinuousClock.now - t))
        var start = ContinuousClock.now
        var n = 0
        for b in sample.ndjson { n += try parser.parse(b, format: .ndjson).records.count }
        best.nd = max(best.nd, Double(n) / seconds(ContinuousClock.now - start))
        start = ContinuousClock.now
        n = 0
        let mapper = SpanMapper(fallbacks: .init(), boundTenant: nil, poolAccelerators: [:])
        for b in sample.otlp {
            let mapped = mapper.map(try TraceExport.decode(Data(b), as: .protobuf))
            for c in mapped.candidates { n += try parser.parse(c.json, format: .ndjson).records.count }
        }
        best.ot = max(best.ot, Double(n) / seconds(ContinuousClock.now - start))
    }
    print(String(format: "in process: NDJSON parse %.0f records/s; OTLP decode + map + parse %.0f spans/s (%.2f× NDJSON); decode alone %.0f/s, decode + map %.0f/s",
                 best.nd, best.ot, best.ot / best.nd, best.decode, best.map))
}

// 2. Over HTTP.
guard rounds > 0 else { exit(0) }
let service = try await BenchmarkService(name: "otlp", binary: binary)
var rate = (nd: [Double](), ot: [Double]())
for round in 1...rounds {
    let (nd, ot) = try bodies(round: round)
    for (which, list, path, type) in [("nd", nd, "/v1/usage", "application/x-ndjson"), ("ot", ot, "/v1/traces", "application/x-protobuf")] {
        let start = ContinuousClock.now
        for body in list {
            guard let answer = await httpPost(service.base + path, key: service.key, bytes: body, contentType: type), answer.status == 200 else {
                await service.fail("POST \(path) failed")
            }
            if which == "ot", let r = try? ExportTraceServiceResponse(serializedBytes: answer.body), r.hasPartialSuccess {
                await service.fail("spans rejected: \(r.partialSuccess.errorMessage)")
            }
        }
        let r = Double(total) / seconds(ContinuousClock.now - start)
        if which == "nd" { rate.nd.append(r) } else { rate.ot.append(r) }
    }
    print(String(format: "round %d: POST /v1/usage NDJSON %.0f records/s, POST /v1/traces protobuf %.0f spans/s", round, rate.nd.last!, rate.ot.last!))
}
let nd = rate.nd.sorted()[rate.nd.count / 2], ot = rate.ot.sorted()[rate.ot.count / 2]
print(String(format: "service, median of %d rounds: NDJSON %.0f records/s, OTLP %.0f spans/s: OTLP at %.2f× NDJSON (goal: ≥ 0.5×)", rounds, nd, ot, ot / nd))
await service.stop(keep: false)
