import Foundation
import GPULedgerCore
import OTLPProto

typealias AnyValue = Opentelemetry_Proto_Common_V1_AnyValue
typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue
typealias Span = Opentelemetry_Proto_Trace_V1_Span

/// Turns the spans of an OTLP trace export into usage records, as contract section 5 ("OpenTelemetry
/// ingest") maps them: each span that carries input tokens becomes one record, written as one
/// line of the record JSON of `POST /v1/usage`, so that it goes through exactly the same parser
/// and rules (`RecordParser`); the caller parses each line on its own, so that one bad span
/// rejects only itself.
public struct SpanMapper: Sendable {
    public var fallbacks: OTLPMapping.Defaults
    /// The tenant the ingest key is bound to, if any.
    public var boundTenant: String?
    /// Each registered pool's accelerator (a span's accelerator defaults to its pool's).
    public var poolAccelerators: [String: String]

    public init(fallbacks: OTLPMapping.Defaults, boundTenant: String?, poolAccelerators: [String: String]) {
        self.fallbacks = fallbacks
        self.boundTenant = boundTenant
        self.poolAccelerators = poolAccelerators
    }

    /// One span that maps to a record: which span it is, and its record as JSON.
    public struct Candidate: Sendable {
        var index: Int
        var name: String
        var spanID: Data
        public var json: [UInt8]
        /// How messages name the span (made only for a span that is rejected).
        public var span: String { SpanMapper.describe(name: name, spanID: spanID, index) }
    }

    public struct Mapped: Sendable {
        public var candidates: [Candidate] = []
        /// Spans that cannot become a record before any field rule (no tenant, no accelerator…): why.
        public var rejected: [String] = []
        /// All spans in the export, and those without tokens (not usage; ignored).
        public var spans = 0
        public var ignored = 0
    }

    public func map(_ request: ExportTraceServiceRequest) -> Mapped {
        var out = Mapped()
        for resourceSpans in request.resourceSpans {
            let resource = Attributes(resourceSpans.resource.attributes, tenantAttribute: fallbacks.tenantAttribute)
            for scopeSpans in resourceSpans.scopeSpans {
                for span in scopeSpans.spans {
                    let index = out.spans
                    out.spans += 1
                    let own = Attributes(span.attributes, tenantAttribute: fallbacks.tenantAttribute)
                    guard own.inputTokens != nil || own.promptTokens != nil else {
                        out.ignored += 1
                        continue
                    }
                    switch record(span, own, own.over(resource)) {
                    case .success(let json): out.candidates.append(Candidate(index: index, name: span.name, spanID: span.spanID, json: json))
                    case .failure(let why): out.rejected.append("\(Self.describe(name: span.name, spanID: span.spanID, index)): \(why.message)")
                    }
                }
            }
        }
        return out
    }

    /// How a message names a span: its position in the export, name and span id.
    static func describe(name: String, spanID: Data, _ index: Int) -> String {
        "span \(index) \(JSONText.quoted(name)) (span id \(hex(spanID)))"
    }

    struct Unmappable: Error { var message: String }

    /// `own`: the span's attributes; `a`: the span's over its resource's.
    func record(_ span: Span, _ own: Attributes, _ a: Attributes) -> Result<[UInt8], Unmappable> {
        var json = JSONLine()

        // request_id: gen_ai.request.id, else the span id in hex.
        if let id = a.requestID { json.string("request_id", id) } else if !span.spanID.isEmpty {
            json.text("request_id", Self.hex(span.spanID))
        } else {
            return .failure(Unmappable(message: "request_id: the span has neither gen_ai.request.id nor a span id"))
        }
        // tenant: gpuledger.tenant, tenant.id, the mapping's tenant attribute, the key's tenant, the mapping's tenant.
        if let t = a.tenant ?? a.tenantID ?? a.configuredTenant { json.string("tenant", t) } else if let t = boundTenant ?? fallbacks.tenant {
            json.text("tenant", t)
        } else {
            let attribute = fallbacks.tenantAttribute.map { ", \($0) (the mapping's tenant_attribute)" } ?? ""
            return .failure(Unmappable(message: "tenant: none found: the span and its resource have no gpuledger.tenant, tenant.id\(attribute); send with an ingest key bound to a tenant or set tenant or tenant_attribute in the OTLP mapping (serve --otlp-mapping)"))
        }
        // model: gen_ai.response.model, gen_ai.request.model, the mapping's model, service.name.
        if let m = a.responseModel ?? a.requestModel { json.string("model", m) } else if let m = fallbacks.model {
            json.text("model", m)
        } else if let m = a.serviceName { json.string("model", m) } else {
            return .failure(Unmappable(message: "model: none found: no gen_ai.response.model, gen_ai.request.model or service.name; or set model in the OTLP mapping"))
        }
        // pool: gpuledger.pool, the mapping's pool; accelerator: gpuledger.accelerator, the pool's, the mapping's.
        var poolName: String?
        if let p = a.pool { json.string("pool", p); poolName = Attributes.text(p) } else if let p = fallbacks.pool {
            json.text("pool", p); poolName = p
        }
        if let a = a.accelerator { json.string("accelerator", a) } else if let a = poolName.flatMap({ poolAccelerators[$0] }) ?? fallbacks.accelerator {
            json.text("accelerator", a)
        } else {
            let pool = poolName.map { "; pool \(JSONText.quoted($0)) is not registered (PUT /v1/pools/{pool})" } ?? ""
            return .failure(Unmappable(message: "accelerator: none found: no gpuledger.accelerator on the span or its resource\(pool); or set pool or accelerator in the OTLP mapping"))
        }
        // started_at: the span's start.
        guard span.startTimeUnixNano > 0 else { return .failure(Unmappable(message: "started_at: the span has no start time")) }
        let start = Timestamp(microseconds: Int64(span.startTimeUnixNano / 1000))
        json.timestamp("started_at", start)
        // Tokens.
        let output = a.outputTokens ?? a.completionTokens
        json.integer("input_tokens", (own.inputTokens ?? own.promptTokens)!)
        if let output { json.integer("output_tokens", output) }
        if let cached = a.cachedInputTokens { json.integer("cached_input_tokens", cached) }
        if let g = a.gpuSeconds { json.number("gpu_seconds", g, scale: 1) }
        // Latencies: seconds in the span, milliseconds in the record.
        var e2e: Double?, ttft: Double?
        if let v = a.e2e { e2e = json.number("e2e_ms", v, scale: 1000) } else if span.endTimeUnixNano >= span.startTimeUnixNano {
            let ms = Double(span.endTimeUnixNano - span.startTimeUnixNano) / 1_000_000
            e2e = ms
            json.double("e2e_ms", ms)
        }
        if let v = a.ttft { ttft = json.number("ttft_ms", v, scale: 1000) }
        if let e2e, let ttft, let n = output.flatMap(Attributes.integer), n > 1, e2e >= ttft {
            json.double("tpot_ms", (e2e - ttft) / Double(n - 1))
        }
        if let v = a.queue { json.number("queue_ms", v, scale: 1000) }
        // status: error when the span's status is ERROR.
        if span.status.code == .error {
            json.text("status", "error")
            let type = a.errorType.flatMap(Attributes.text) ?? "span_error"
            json.text("error_type", type.isEmpty ? "span_error" : String(type.prefix(64)))
        }
        // labels: gpuledger.label.* (the span's over its resource's).
        if !a.labels.isEmpty { json.labels(a.labels) }
        return .success(json.finish())
    }

    static func hex(_ data: Data) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(data.count * 2)
        for b in data { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The attributes of one span or resource that the mapping reads, found in one pass.
struct Attributes {
    var requestID, tenant, tenantID, configuredTenant, responseModel, requestModel, serviceName: AnyValue?
    var pool, accelerator, inputTokens, promptTokens, outputTokens, completionTokens, cachedInputTokens, gpuSeconds: AnyValue?
    var e2e, ttft, queue, errorType: AnyValue?
    var labels: [(String, String)] = []

    static let labelPrefix = "gpuledger.label."

    init(_ attributes: [KeyValue], tenantAttribute: String?) {
        for kv in attributes {
            let v = kv.value
            switch kv.key {
            case "gen_ai.request.id": requestID = v
            case "gpuledger.tenant": tenant = v
            case "tenant.id": tenantID = v
            case "gen_ai.response.model": responseModel = v
            case "gen_ai.request.model": requestModel = v
            case "service.name": serviceName = v
            case "gpuledger.pool": pool = v
            case "gpuledger.accelerator": accelerator = v
            case "gen_ai.usage.input_tokens": inputTokens = v
            case "gen_ai.usage.prompt_tokens": promptTokens = v
            case "gen_ai.usage.output_tokens": outputTokens = v
            case "gen_ai.usage.completion_tokens": completionTokens = v
            case "gen_ai.usage.cached_input_tokens", "gen_ai.usage.cache_read.input_tokens":
                if cachedInputTokens == nil || kv.key == "gen_ai.usage.cached_input_tokens" { cachedInputTokens = v }
            case "gpuledger.gpu_seconds": gpuSeconds = v
            case "gen_ai.latency.e2e": e2e = v
            case "gen_ai.latency.time_to_first_token": ttft = v
            case "gen_ai.latency.time_in_queue": queue = v
            case "error.type": errorType = v
            default:
                if kv.key.hasPrefix(Self.labelPrefix) {
                    let name = String(kv.key.dropFirst(Self.labelPrefix.count))
                    labels.removeAll { $0.0 == name }
                    labels.append((name, Self.text(v) ?? ""))
                }
            }
            if let tenantAttribute, kv.key == tenantAttribute { configuredTenant = v }
        }
    }

    /// These attributes, with `resource`'s where these have none (labels: these over its).
    func over(_ resource: Attributes) -> Attributes {
        var a = self
        a.requestID = requestID ?? resource.requestID
        a.tenant = tenant ?? resource.tenant
        a.tenantID = tenantID ?? resource.tenantID
        a.configuredTenant = configuredTenant ?? resource.configuredTenant
        a.responseModel = responseModel ?? resource.responseModel
        a.requestModel = requestModel ?? resource.requestModel
        a.serviceName = serviceName ?? resource.serviceName
        a.pool = pool ?? resource.pool
        a.accelerator = accelerator ?? resource.accelerator
        a.outputTokens = outputTokens ?? resource.outputTokens
        a.completionTokens = completionTokens ?? resource.completionTokens
        a.cachedInputTokens = cachedInputTokens ?? resource.cachedInputTokens
        a.gpuSeconds = gpuSeconds ?? resource.gpuSeconds
        a.e2e = e2e ?? resource.e2e
        a.ttft = ttft ?? resource.ttft
        a.queue = queue ?? resource.queue
        a.errorType = errorType ?? resource.errorType
        if !resource.labels.isEmpty {
            var labels = resource.labels
            for (k, v) in self.labels {
                if let i = labels.firstIndex(where: { $0.0 == k }) { labels[i].1 = v } else { labels.append((k, v)) }
            }
            a.labels = labels
        }
        return a
    }

    /// A value as text: strings as they are, numbers and booleans written out; nil for none.
    static func text(_ v: AnyValue) -> String? {
        switch v.value {
        case .stringValue(let s): s
        case .intValue(let i): String(i)
        case .doubleValue(let d): String(d)
        case .boolValue(let b): b ? "true" : "false"
        default: nil
        }
    }

    /// A value as an integer: an int, a whole double, or a string of digits.
    static func integer(_ v: AnyValue) -> Int64? {
        switch v.value {
        case .intValue(let i): i
        case .doubleValue(let d) where d.rounded() == d && abs(d) < 9e18: Int64(d)
        case .stringValue(let s): Int64(s)
        default: nil
        }
    }

    /// A value as a number: an int, a double, or a string holding one.
    static func number(_ v: AnyValue) -> Double? {
        switch v.value {
        case .intValue(let i): Double(i)
        case .doubleValue(let d): d
        case .stringValue(let s): Double(s)
        default: nil
        }
    }
}

/// One record as a JSON object, written field by field.
struct JSONLine {
    var out: [UInt8] = [UInt8(ascii: "{")]

    init() { out.reserveCapacity(400) }

    mutating func key(_ name: StaticString) {
        if out.count > 1 { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    mutating func text(_ name: StaticString, _ s: String) {
        key(name)
        JSONText.appendQuoted(s, to: &out)
    }

    /// A string field from an attribute; a value that is not text (an array, bytes) is written
    /// as an empty JSON array, for the parser to say the field must be a string.
    mutating func string(_ name: StaticString, _ v: AnyValue) {
        key(name)
        if let s = Attributes.text(v) { JSONText.appendQuoted(s, to: &out) } else { out.append(contentsOf: Array("[]".utf8)) }
    }

    /// An integer field; a value that is not one is written as a string, so that the parser
    /// says the field must be an integer.
    mutating func integer(_ name: StaticString, _ v: AnyValue) {
        key(name)
        if let i = Attributes.integer(v) { out.append(contentsOf: String(i).utf8) } else { JSONText.appendQuoted(Attributes.text(v) ?? "", to: &out) }
    }

    /// A number field, the attribute × `scale`; returns it. Not a finite number: written as a
    /// string, for the parser to refuse.
    @discardableResult
    mutating func number(_ name: StaticString, _ v: AnyValue, scale: Double) -> Double? {
        guard let d = Attributes.number(v).map({ $0 * scale }), d.isFinite else {
            key(name)
            JSONText.appendQuoted(Attributes.text(v) ?? "", to: &out)
            return nil
        }
        if scale == 1, case .intValue(let i) = v.value { key(name); out.append(contentsOf: String(i).utf8); return d }
        double(name, d)
        return d
    }

    mutating func double(_ name: StaticString, _ d: Double) {
        key(name)
        out.append(contentsOf: String(d).utf8)
    }

    mutating func timestamp(_ name: StaticString, _ t: Timestamp) {
        key(name)
        out.append(UInt8(ascii: "\""))
        t.append(to: &out, separator: UInt8(ascii: "T"), zone: "Z")
        out.append(UInt8(ascii: "\""))
    }

    mutating func labels(_ labels: [(String, String)]) {
        key("labels")
        JSONText.appendObject(labels, to: &out)
    }

    mutating func finish() -> [UInt8] {
        out.append(UInt8(ascii: "}"))
        return out
    }
}
