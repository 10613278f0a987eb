/// One LLM request served, as the fleet reports it (contract section 2).
public struct UsageRecord: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable { case ok, error }

    public struct Label: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) { self.key = key; self.value = value }
    }

    public var requestID: String
    public var tenant: String
    public var model: String
    public var accelerator: String
    public var pool: String?
    public var startedAt: Timestamp
    /// Accelerator-seconds as exact decimal text (`"12.5"`, `"1e3"`): it feeds money, so it is
    /// never rounded through a `Double`. PostgreSQL stores it as `numeric`. nil: not measured,
    /// which only a record on a pool that allocates by tokens may be.
    public var gpuSeconds: String?
    public var inputTokens: Int64
    public var outputTokens: Int64
    public var cachedInputTokens: Int64?
    public var ttftMs: Double?
    public var tpotMs: Double?
    public var e2eMs: Double?
    /// Time spent queued before being scheduled (OpenTelemetry `gen_ai.latency.time_in_queue`).
    public var queueMs: Double?
    public var status: Status
    public var errorType: String?
    /// In the order sent; keys are unique.
    public var labels: [Label]

    public init(
        requestID: String, tenant: String, model: String, accelerator: String, pool: String? = nil,
        startedAt: Timestamp, gpuSeconds: String?, inputTokens: Int64, outputTokens: Int64,
        cachedInputTokens: Int64? = nil, ttftMs: Double? = nil, tpotMs: Double? = nil, e2eMs: Double? = nil, queueMs: Double? = nil,
        status: Status = .ok, errorType: String? = nil, labels: [Label] = []
    ) {
        self.requestID = requestID
        self.tenant = tenant
        self.model = model
        self.accelerator = accelerator
        self.pool = pool
        self.startedAt = startedAt
        self.gpuSeconds = gpuSeconds
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cachedInputTokens = cachedInputTokens
        self.ttftMs = ttftMs
        self.tpotMs = tpotMs
        self.e2eMs = e2eMs
        self.queueMs = queueMs
        self.status = status
        self.errorType = errorType
        self.labels = labels
    }

    /// The labels as a JSON object text (`{}` when there are none), for a `jsonb` column.
    public var labelsJSON: String {
        var out = [UInt8]()
        JSONText.appendObject(labels.map { ($0.key, $0.value) }, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The contract's field names, in the contract's order.
    public static let fieldNames: [String] = [
        "request_id", "tenant", "model", "accelerator", "pool", "started_at", "gpu_seconds",
        "input_tokens", "output_tokens", "cached_input_tokens", "ttft_ms", "tpot_ms", "e2e_ms",
        "queue_ms", "status", "error_type", "labels",
    ]
}

/// One problem with one field of one record in a batch.
public struct FieldError: Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    public var field: String
    public var message: String
    public init(index: Int, field: String, message: String) {
        self.index = index
        self.field = field
        self.message = message
    }
    public var description: String { "record \(index): \(field): \(message)" }
}

/// JSON text helpers shared by the encoders.
public enum JSONText {
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0x0A: out.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `{"k":"v",…}`: an object of string values, in the order given.
    public static func appendObject(_ pairs: [(String, String)], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (i, (k, v)) in pairs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendQuoted(k, to: &out)
            out.append(UInt8(ascii: ":"))
            appendQuoted(v, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    public static func quoted(_ s: String) -> String {
        var out = [UInt8]()
        appendQuoted(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

extension UsageRecord {
    /// Whether `t` is a valid tenant: `^[a-z0-9][a-z0-9._-]{0,62}$`.
    public static func isValidTenant(_ t: String) -> Bool {
        let u = t.utf8
        guard !u.isEmpty, u.count <= 63 else { return false }
        var first = true
        for c in u {
            let ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || (!first && (c == 46 || c == 95 || c == 45))
            if !ok { return false }
            first = false
        }
        return true
    }
}
