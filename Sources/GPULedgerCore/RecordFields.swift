/// The contract's field rules, applied to one record's JSON object as the scanner reads it.
extension ParseState {
    /// Parses one value that should be a record; a non-object is a field error, not a syntax error.
    mutating func parseRecord(_ s: inout JSONScanner) throws(MalformedBody) {
        let index = count
        count += 1
        guard s.pos < s.end else { throw s.error("expected a record") }
        guard s.buf[s.pos] == UInt8(ascii: "{") else {
            try s.skipValue()
            errors.append(FieldError(index: index, field: "record", message: "must be a JSON object"))
            invalid += 1
            return
        }
        s.pos += 1
        var bad = false
        var seen: UInt32 = 0

        var requestID: String?
        var tenant: String?
        var model: String?
        var accelerator: String?
        var pool: String?
        var startedAt: Timestamp?
        var gpuSeconds: String?
        var gpuSecondsBad = false
        var inputTokens: Int64?
        var outputTokens: Int64?
        var cached: Int64?
        var ttft: Double?
        var tpot: Double?
        var e2e: Double?
        var queue: Double?
        var status: UsageRecord.Status?
        var errorType: String?
        var labels: [UsageRecord.Label] = []

        s.skipWhitespace()
        if s.pos < s.end, s.buf[s.pos] == UInt8(ascii: "}") {
            s.pos += 1
        } else {
            while true {
                s.skipWhitespace()
                guard s.pos < s.end, s.buf[s.pos] == UInt8(ascii: "\"") else { throw s.error("expected a field name in double quotes") }
                let key = try s.parseKey()
                s.skipWhitespace()
                try s.expect(UInt8(ascii: ":"))
                s.skipWhitespace()
                let field = key.field
                if let field {
                    let bit: UInt32 = 1 << field.rawValue
                    if seen & bit != 0 {
                        fail(index, field.name, "appears more than once", &bad)
                        try s.skipValue()
                    } else {
                        seen |= bit
                        let v = try s.parseValue()
                        switch field {
                        case .requestID: requestID = string(v, index, field, min: 1, max: 128, &bad)
                        case .tenant:
                            if let t = v.text {
                                if UsageRecord.isValidTenant(t) { tenant = t } else {
                                    fail(index, field.name, "must match ^[a-z0-9][a-z0-9._-]{0,62}$ (lower-case letters, digits, '.', '_', '-'; at most 63)", &bad)
                                }
                            } else { fail(index, field.name, v.isNull ? "is required" : "must be a string", &bad) }
                        case .model: model = string(v, index, field, min: 1, max: 128, &bad)
                        case .accelerator:
                            accelerator = string(v, index, field, min: 1, max: 64, &bad)
                            // A batch names few accelerators: those found known already are compared, not hashed.
                            if let a = accelerator, let known = parser.knownAccelerators, !knownAccelerators.contains(a) {
                                if known.contains(a) {
                                    if knownAccelerators.count < 16 { knownAccelerators.append(a) }
                                } else {
                                    fail(index, field.name, "unknown accelerator \(JSONText.quoted(a)); use a name from pricing/ (\(known.sorted().joined(separator: ", ")))", &bad)
                                    accelerator = nil
                                }
                            }
                        case .pool: if !v.isNull { pool = string(v, index, field, min: 1, max: 64, &bad) }
                        case .startedAt:
                            if v.isString {
                                if let ts = v.timestamp {
                                    if ts > parser.now.adding(seconds: parser.maxFutureSkewSeconds) {
                                        fail(index, field.name, "is more than 5 minutes in the future", &bad)
                                    } else { startedAt = ts }
                                } else { fail(index, field.name, "must be an RFC 3339 timestamp such as 2026-11-28T10:00:00Z", &bad) }
                            } else { fail(index, field.name, v.isNull ? "is required" : "must be an RFC 3339 timestamp string", &bad) }
                        case .gpuSeconds:
                            if case .number(let raw) = v, let d = JSONNumber.double(raw),
                               d.isFinite, d >= 0, d <= RecordParser.maxGPUSeconds {
                                gpuSeconds = raw.first == UInt8(ascii: "-") ? "0" : String(decoding: UnsafeBufferPointer(rebasing: raw), as: UTF8.self)
                            } else if !v.isNull { fail(index, field.name, "must be a finite number >= 0", &bad); gpuSecondsBad = true }
                        case .inputTokens: inputTokens = integer(v, index, field, required: true, &bad)
                        case .outputTokens: outputTokens = integer(v, index, field, required: true, &bad)
                        case .cachedInputTokens: cached = integer(v, index, field, required: false, &bad)
                        case .ttftMs: ttft = milliseconds(v, index, field, &bad)
                        case .tpotMs: tpot = milliseconds(v, index, field, &bad)
                        case .e2eMs: e2e = milliseconds(v, index, field, &bad)
                        case .queueMs: queue = milliseconds(v, index, field, &bad)
                        case .status:
                            switch v.text {
                            case "ok": status = .ok
                            case "error": status = .error
                            case nil where v.isNull: break
                            default: fail(index, field.name, "must be \"ok\" or \"error\"", &bad)
                            }
                        case .errorType: if !v.isNull { errorType = string(v, index, field, min: 1, max: 64, &bad) }
                        case .labels: labels = self.labels(v, index, &bad)
                        }
                    }
                } else {
                    fail(index, key.name, "unknown field; the record fields are \(UsageRecord.fieldNames.joined(separator: ", "))", &bad)
                    try s.skipValue()
                }
                s.skipWhitespace()
                guard s.pos < s.end else { throw s.error("unterminated object") }
                let c = s.buf[s.pos]
                s.pos += 1
                if c == UInt8(ascii: "}") { break }
                guard c == UInt8(ascii: ",") else { s.pos -= 1; throw s.error("expected ',' or '}' in the object") }
            }
        }

        for field in RecordField.required where seen & (1 << field.rawValue) == 0 {
            fail(index, field.name, "is required", &bad)
        }
        if gpuSeconds == nil, !gpuSecondsBad, !(pool.map { parser.tokenPools.contains($0) } ?? false) {
            if pool != nil { poolWithoutGPUSeconds = true }
            fail(index, RecordField.gpuSeconds.name, pool.map { "is required (pool \($0) allocates by gpu_seconds; only a pool that allocates by tokens takes records without it)" } ?? "is required", &bad)
        }
        if let c = cached, let i = inputTokens, c > i {
            fail(index, RecordField.cachedInputTokens.name, "must not exceed input_tokens (\(i))", &bad)
        }
        if errorType != nil, status != .error {
            fail(index, RecordField.errorType.name, "is only allowed with status \"error\"", &bad)
        }
        if bad {
            invalid += 1
            return
        }
        guard errors.isEmpty, let requestID, let tenant, let model, let accelerator, let startedAt,
              let inputTokens, let outputTokens else { return }
        records.append(UsageRecord(
            requestID: requestID, tenant: tenant, model: model, accelerator: accelerator, pool: pool,
            startedAt: startedAt, gpuSeconds: gpuSeconds, inputTokens: inputTokens, outputTokens: outputTokens,
            cachedInputTokens: cached, ttftMs: ttft, tpotMs: tpot, e2eMs: e2e, queueMs: queue, status: status ?? .ok,
            errorType: errorType, labels: labels))
    }

    /// A JSON integer literal (no fraction, no exponent) that is >= 0 and fits in Int64.
    static func nonNegativeInteger(_ raw: UnsafeBufferPointer<UInt8>.SubSequence) -> Int64? {
        guard !raw.isEmpty, raw.count <= 19 else { return nil }
        var n: Int64 = 0
        for c in raw {
            guard c >= 48, c <= 57 else { return nil }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (sum, o2) = m.addingReportingOverflow(Int64(c - 48))
            guard !o1, !o2 else { return nil }
            n = sum
        }
        return n
    }

    /// The string's length in Unicode scalars (the contract's "characters") and whether it holds
    /// a NUL, in one pass over its UTF-8 (two passes through `String.UTF8View` were a tenth of
    /// the parser's time).
    static func measure(_ s: String) -> (characters: Int, nul: Bool) {
        var s = s
        return s.withUTF8 { u in
            var n = 0, nul = false
            for b in u {
                n &+= b & 0xC0 != 0x80 ? 1 : 0
                nul = nul || b == 0
            }
            return (n, nul)
        }
    }

    mutating func string(_ v: JSONValue, _ index: Int, _ field: RecordField, min: Int, max: Int, _ bad: inout Bool) -> String? {
        guard let t = v.text else {
            fail(index, field.name, v.isNull ? "is required" : "must be a string of \(min) to \(max) characters", &bad)
            return nil
        }
        let (n, nul) = Self.measure(t)
        guard n >= min, n <= max else {
            fail(index, field.name, "must be a string of \(min) to \(max) characters (got \(n))", &bad)
            return nil
        }
        guard !nul else {
            fail(index, field.name, "must not contain the NUL character", &bad)
            return nil
        }
        return t
    }

    mutating func integer(_ v: JSONValue, _ index: Int, _ field: RecordField, required: Bool, _ bad: inout Bool) -> Int64? {
        if v.isNull {
            if required { fail(index, field.name, "is required", &bad) }
            return nil
        }
        guard case .number(let raw) = v, let n = Self.nonNegativeInteger(raw) else {
            fail(index, field.name, "must be an integer >= 0", &bad)
            return nil
        }
        guard n <= parser.maxTokens else {
            fail(index, field.name, "must be at most \(parser.maxTokens)", &bad)
            return nil
        }
        return n
    }

    mutating func milliseconds(_ v: JSONValue, _ index: Int, _ field: RecordField, _ bad: inout Bool) -> Double? {
        if v.isNull { return nil }
        guard case .number(let raw) = v, let d = JSONNumber.double(raw), d.isFinite, d >= 0 else {
            fail(index, field.name, "must be a finite number >= 0", &bad)
            return nil
        }
        return d == 0 ? 0 : d // -0 → 0
    }

    mutating func labels(_ v: JSONValue, _ index: Int, _ bad: inout Bool) -> [UsageRecord.Label] {
        let name = RecordField.labels.name
        switch v {
        case .null: return []
        case .object(let pairs):
            if pairs.count > 32 {
                fail(index, name, "must have at most 32 keys (got \(pairs.count))", &bad)
                return []
            }
            var out: [UsageRecord.Label] = []
            // At most 32 keys: a linear search beats hashing them.
            var keys: [String] = []
            keys.reserveCapacity(pairs.count)
            for (k, value) in pairs {
                let (kn, knul) = Self.measure(k)
                if kn < 1 || kn > 64 || knul {
                    fail(index, name, "key \(JSONText.quoted(k)) must be 1 to 64 characters without NUL", &bad)
                    continue
                }
                if keys.contains(k) {
                    fail(index, name, "key \(JSONText.quoted(k)) appears more than once", &bad)
                    continue
                }
                keys.append(k)
                guard let sv = value.text else {
                    fail(index, name, "value of \(JSONText.quoted(k)) must be a string", &bad)
                    continue
                }
                let (vn, vnul) = Self.measure(sv)
                if vn > 256 || vnul {
                    fail(index, name, "value of \(JSONText.quoted(k)) must be at most 256 characters without NUL", &bad)
                    continue
                }
                out.append(.init(k, sv))
            }
            return out
        default:
            fail(index, name, "must be an object of string values", &bad)
            return []
        }
    }
}

/// The record's fields, by their names in `UsageRecord.fieldNames`.
enum RecordField: UInt32 {
    case requestID, tenant, model, accelerator, pool, startedAt, gpuSeconds, inputTokens, outputTokens,
         cachedInputTokens, ttftMs, tpotMs, e2eMs, queueMs, status, errorType, labels

    var name: String { UsageRecord.fieldNames[Int(rawValue)] }

    /// Required on every record (`gpu_seconds` too, except on a pool that allocates by tokens).
    static let required: [RecordField] = [.requestID, .tenant, .model, .accelerator, .startedAt, .inputTokens, .outputTokens]

    static let names: [[UInt8]] = UsageRecord.fieldNames.map { Array($0.utf8) }

    init?(_ key: UnsafeBufferPointer<UInt8>.SubSequence) {
        for (i, n) in Self.names.enumerated() where n.count == key.count && n.first == key.first {
            if key.elementsEqual(n) { self.init(rawValue: UInt32(i)); return }
        }
        return nil
    }
}
