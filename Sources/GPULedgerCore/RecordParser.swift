/// A body that is not well-formed JSON: answered with 400 and where it went wrong.
public struct MalformedBody: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    /// 0-based byte offset into the whole body.
    public var offset: Int
    /// 1-based line, for NDJSON bodies.
    public var line: Int?

    public var description: String {
        if let line { return "malformed JSON on line \(line): \(reason)" }
        return "malformed JSON at byte offset \(offset): \(reason)"
    }
}

/// The parse of a whole ingest body: the valid records, and every field error found.
public struct ParsedBatch: Sendable {
    /// Every record that passed every rule, in batch order (only meaningful when `errors` is empty).
    public var records: [UsageRecord]
    public var errors: [FieldError]
    /// How many records had at least one error.
    public var invalidRecords: Int
    /// How many records the body held.
    public var count: Int
}

public enum BodyFormat: Sendable {
    /// One record, an array of records, or `{"records": [...]}`.
    case json
    /// One record per line.
    case ndjson
}

/// Parses ingest bodies straight from their bytes into validated `UsageRecord`s.
///
/// Why not `JSONDecoder`: it decodes about 45,000–65,000 records a second on these machines,
/// slower than PostgreSQL's COPY takes them, so it would be the ingest bottleneck. This parser
/// knows the record's shape, works on the raw bytes, and is as strict: RFC 8259 grammar, valid
/// UTF-8, no control characters in strings, no trailing commas or garbage; on top of that the
/// contract's field rules, unknown and repeated fields refused. Syntax errors throw
/// `MalformedBody`; rule violations are collected as `FieldError`s for every record.
public struct RecordParser: Sendable {
    public var now: Timestamp
    /// How far in the future `started_at` may be (contract: 5 minutes).
    public var maxFutureSkewSeconds: Int64 = 300
    /// When set, `accelerator` must be one of these names (the names in `pricing/`).
    public var knownAccelerators: Set<String>?
    /// Largest `gpu_seconds` accepted (a sanity bound far above any real request).
    public static let maxGPUSeconds: Double = 1e12

    public init(now: Timestamp, knownAccelerators: Set<String>? = nil) {
        self.now = now
        self.knownAccelerators = knownAccelerators
    }

    public func parse(_ body: [UInt8], format: BodyFormat) throws(MalformedBody) -> ParsedBatch {
        try body.withUnsafeBufferPointer { buf throws(MalformedBody) in try parse(buf, format: format) }
    }

    public func parse(_ buf: UnsafeBufferPointer<UInt8>, format: BodyFormat) throws(MalformedBody) -> ParsedBatch {
        var state = ParseState(parser: self)
        switch format {
        case .json: try state.parseJSONBody(buf)
        case .ndjson: try state.parseNDJSONBody(buf)
        }
        return ParsedBatch(records: state.records, errors: state.errors, invalidRecords: state.invalid, count: state.count)
    }
}

struct ParseState {
    let parser: RecordParser
    var records: [UsageRecord] = []
    var errors: [FieldError] = []
    var invalid = 0
    var count = 0

    init(parser: RecordParser) { self.parser = parser }

    mutating func parseJSONBody(_ buf: UnsafeBufferPointer<UInt8>) throws(MalformedBody) {
        var s = Scanner(buf: buf, pos: 0, end: buf.count, line: nil)
        s.skipWhitespace()
        guard s.pos < s.end else { throw s.error("the body is empty; send a record, an array of records or {\"records\": [...]}") }
        switch buf[s.pos] {
        case UInt8(ascii: "["):
            try parseArray(&s)
        case UInt8(ascii: "{"):
            // Either {"records": [...]} or one record.
            let start = s.pos
            s.pos += 1
            s.skipWhitespace()
            var isWrapper = false
            if s.pos < s.end, buf[s.pos] == UInt8(ascii: "\"") {
                isWrapper = try s.parseKey().equals("records")
            }
            if isWrapper {
                s.skipWhitespace()
                try s.expect(UInt8(ascii: ":"))
                s.skipWhitespace()
                guard s.pos < s.end, buf[s.pos] == UInt8(ascii: "[") else {
                    throw s.error("\"records\" must be an array of records")
                }
                try parseArray(&s)
                s.skipWhitespace()
                guard s.pos < s.end, buf[s.pos] == UInt8(ascii: "}") else {
                    throw s.error("the wrapper object takes only the key \"records\"")
                }
                s.pos += 1
            } else {
                s.pos = start
                try parseRecord(&s)
            }
        default:
            throw s.error("expected a record object, an array of records or {\"records\": [...]}")
        }
        s.skipWhitespace()
        guard s.pos == s.end else { throw s.error("unexpected data after the JSON value") }
    }

    mutating func parseArray(_ s: inout Scanner) throws(MalformedBody) {
        try s.expect(UInt8(ascii: "["))
        s.skipWhitespace()
        if s.pos < s.end, s.buf[s.pos] == UInt8(ascii: "]") { s.pos += 1; return }
        while true {
            s.skipWhitespace()
            try parseRecord(&s)
            s.skipWhitespace()
            guard s.pos < s.end else { throw s.error("unterminated array") }
            let c = s.buf[s.pos]
            s.pos += 1
            if c == UInt8(ascii: "]") { return }
            guard c == UInt8(ascii: ",") else { s.pos -= 1; throw s.error("expected ',' or ']' in the array") }
        }
    }

    mutating func parseNDJSONBody(_ buf: UnsafeBufferPointer<UInt8>) throws(MalformedBody) {
        var lineStart = 0
        var line = 1
        while lineStart < buf.count {
            var lineEnd = lineStart
            while lineEnd < buf.count, buf[lineEnd] != 0x0A { lineEnd += 1 }
            var contentEnd = lineEnd
            if contentEnd > lineStart, buf[contentEnd - 1] == 0x0D { contentEnd -= 1 }
            var s = Scanner(buf: buf, pos: lineStart, end: contentEnd, line: line)
            s.skipWhitespace()
            if s.pos < s.end {
                try parseRecord(&s)
                s.skipWhitespace()
                guard s.pos == s.end else { throw s.error("unexpected data after the record (one record per line)") }
            }
            lineStart = lineEnd + 1
            line += 1
        }
    }

    mutating func fail(_ index: Int, _ field: String, _ message: String, _ bad: inout Bool) {
        bad = true
        errors.append(FieldError(index: index, field: field, message: message))
    }

    /// Parses one value that should be a record; a non-object is a field error, not a syntax error.
    mutating func parseRecord(_ s: inout Scanner) throws(MalformedBody) {
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
        var inputTokens: Int64?
        var outputTokens: Int64?
        var cached: Int64?
        var ttft: Double?
        var tpot: Double?
        var e2e: Double?
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
                                if Self.isValidTenant(t) { tenant = t } else {
                                    fail(index, field.name, "must match ^[a-z0-9][a-z0-9._-]{0,62}$ (lower-case letters, digits, '.', '_', '-'; at most 63)", &bad)
                                }
                            } else { fail(index, field.name, v.isNull ? "is required" : "must be a string", &bad) }
                        case .model: model = string(v, index, field, min: 1, max: 128, &bad)
                        case .accelerator:
                            accelerator = string(v, index, field, min: 1, max: 64, &bad)
                            if let a = accelerator, let known = parser.knownAccelerators, !known.contains(a) {
                                fail(index, field.name, "unknown accelerator \(JSONText.quoted(a)); use a name from pricing/ (\(known.sorted().joined(separator: ", ")))", &bad)
                                accelerator = nil
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
                            if case .number(let raw) = v, let d = Double(String(decoding: UnsafeBufferPointer(rebasing: raw), as: UTF8.self)),
                               d.isFinite, d >= 0, d <= RecordParser.maxGPUSeconds {
                                gpuSeconds = raw.first == UInt8(ascii: "-") ? "0" : String(decoding: UnsafeBufferPointer(rebasing: raw), as: UTF8.self)
                            } else { fail(index, field.name, v.isNull ? "is required" : "must be a finite number >= 0", &bad) }
                        case .inputTokens: inputTokens = integer(v, index, field, required: true, &bad)
                        case .outputTokens: outputTokens = integer(v, index, field, required: true, &bad)
                        case .cachedInputTokens: cached = integer(v, index, field, required: false, &bad)
                        case .ttftMs: ttft = milliseconds(v, index, field, &bad)
                        case .tpotMs: tpot = milliseconds(v, index, field, &bad)
                        case .e2eMs: e2e = milliseconds(v, index, field, &bad)
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

        for field in Field.required where seen & (1 << field.rawValue) == 0 {
            fail(index, field.name, "is required", &bad)
        }
        if let c = cached, let i = inputTokens, c > i {
            fail(index, Field.cachedInputTokens.name, "must not exceed input_tokens (\(i))", &bad)
        }
        if errorType != nil, status != .error {
            fail(index, Field.errorType.name, "is only allowed with status \"error\"", &bad)
        }
        if bad {
            invalid += 1
            return
        }
        guard errors.isEmpty, let requestID, let tenant, let model, let accelerator, let startedAt, let gpuSeconds,
              let inputTokens, let outputTokens else { return }
        records.append(UsageRecord(
            requestID: requestID, tenant: tenant, model: model, accelerator: accelerator, pool: pool,
            startedAt: startedAt, gpuSeconds: gpuSeconds, inputTokens: inputTokens, outputTokens: outputTokens,
            cachedInputTokens: cached, ttftMs: ttft, tpotMs: tpot, e2eMs: e2e, status: status ?? .ok,
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

    static func isValidTenant(_ t: String) -> Bool {
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

    static func characterCount(_ s: String) -> Int {
        var n = 0
        for b in s.utf8 where b & 0xC0 != 0x80 { n += 1 }
        return n
    }

    mutating func string(_ v: Value, _ index: Int, _ field: Field, min: Int, max: Int, _ bad: inout Bool) -> String? {
        guard let t = v.text else {
            fail(index, field.name, v.isNull ? "is required" : "must be a string of \(min) to \(max) characters", &bad)
            return nil
        }
        let n = Self.characterCount(t)
        guard n >= min, n <= max else {
            fail(index, field.name, "must be a string of \(min) to \(max) characters (got \(n))", &bad)
            return nil
        }
        guard !t.utf8.contains(0) else {
            fail(index, field.name, "must not contain the NUL character", &bad)
            return nil
        }
        return t
    }

    mutating func integer(_ v: Value, _ index: Int, _ field: Field, required: Bool, _ bad: inout Bool) -> Int64? {
        if v.isNull {
            if required { fail(index, field.name, "is required", &bad) }
            return nil
        }
        guard case .number(let raw) = v, let n = Self.nonNegativeInteger(raw) else {
            fail(index, field.name, "must be an integer >= 0", &bad)
            return nil
        }
        return n
    }

    mutating func milliseconds(_ v: Value, _ index: Int, _ field: Field, _ bad: inout Bool) -> Double? {
        if v.isNull { return nil }
        guard case .number(let raw) = v, let d = Double(String(decoding: UnsafeBufferPointer(rebasing: raw), as: UTF8.self)), d.isFinite, d >= 0 else {
            fail(index, field.name, "must be a finite number >= 0", &bad)
            return nil
        }
        return d == 0 ? 0 : d // -0 → 0
    }

    mutating func labels(_ v: Value, _ index: Int, _ bad: inout Bool) -> [UsageRecord.Label] {
        let name = Field.labels.name
        switch v {
        case .null: return []
        case .object(let pairs):
            if pairs.count > 32 {
                fail(index, name, "must have at most 32 keys (got \(pairs.count))", &bad)
                return []
            }
            var out: [UsageRecord.Label] = []
            var keys = Set<String>()
            for (k, value) in pairs {
                let kn = Self.characterCount(k)
                if kn < 1 || kn > 64 || k.utf8.contains(0) {
                    fail(index, name, "key \(JSONText.quoted(k)) must be 1 to 64 characters without NUL", &bad)
                    continue
                }
                if !keys.insert(k).inserted {
                    fail(index, name, "key \(JSONText.quoted(k)) appears more than once", &bad)
                    continue
                }
                guard let sv = value.text else {
                    fail(index, name, "value of \(JSONText.quoted(k)) must be a string", &bad)
                    continue
                }
                if Self.characterCount(sv) > 256 || sv.utf8.contains(0) {
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

enum Key {
    case raw(UnsafeBufferPointer<UInt8>.SubSequence)
    case decoded(String)

    var name: String {
        switch self {
        case .raw(let r): return String(decoding: UnsafeBufferPointer(rebasing: r), as: UTF8.self)
        case .decoded(let s): return s
        }
    }

    func equals(_ text: String) -> Bool {
        switch self {
        case .raw(let r): return r.elementsEqual(text.utf8)
        case .decoded(let s): return s == text
        }
    }

    var field: Field? {
        switch self {
        case .raw(let r): return Field(r)
        case .decoded(let s): return Field.names.firstIndex { $0.elementsEqual(s.utf8) }.flatMap { Field(rawValue: UInt32($0)) }
        }
    }
}

enum Field: UInt32 {
    case requestID, tenant, model, accelerator, pool, startedAt, gpuSeconds, inputTokens, outputTokens,
         cachedInputTokens, ttftMs, tpotMs, e2eMs, status, errorType, labels

    var name: String { UsageRecord.fieldNames[Int(rawValue)] }

    static let required: [Field] = [.requestID, .tenant, .model, .accelerator, .startedAt, .gpuSeconds, .inputTokens, .outputTokens]

    static let names: [[UInt8]] = UsageRecord.fieldNames.map { Array($0.utf8) }

    init?(_ key: UnsafeBufferPointer<UInt8>.SubSequence) {
        for (i, n) in Self.names.enumerated() where n.count == key.count && n.first == key.first {
            if key.elementsEqual(n) { self.init(rawValue: UInt32(i)); return }
        }
        return nil
    }
}

/// A parsed JSON value, kept only as far as the record rules need.
enum Value {
    case null
    case bool(Bool)
    case string(String)
    /// A string without escapes, all ASCII: its bytes, not yet a String.
    case asciiString(UnsafeBufferPointer<UInt8>.SubSequence)
    /// The number's bytes, already checked against the JSON grammar.
    case number(UnsafeBufferPointer<UInt8>.SubSequence)
    case object([(String, Value)])
    case array

    var isNull: Bool { if case .null = self { return true } else { return false } }

    var isString: Bool {
        switch self {
        case .string, .asciiString: return true
        default: return false
        }
    }

    var text: String? {
        switch self {
        case .string(let s): return s
        case .asciiString(let raw): return String(decoding: UnsafeBufferPointer(rebasing: raw), as: UTF8.self)
        default: return nil
        }
    }

    /// An RFC 3339 string's instant, parsed straight from the bytes when it has no escapes.
    var timestamp: Timestamp? {
        switch self {
        case .asciiString(let raw): return Timestamp.parseRFC3339(raw)
        case .string(let s): return Timestamp.parseRFC3339(s)
        default: return nil
        }
    }
}

/// A cursor over the body's bytes that enforces the JSON grammar.
struct Scanner {
    let buf: UnsafeBufferPointer<UInt8>
    var pos: Int
    let end: Int
    let line: Int?

    func error(_ reason: String) -> MalformedBody {
        MalformedBody(reason: reason, offset: pos, line: line)
    }

    mutating func skipWhitespace() {
        while pos < end {
            let c = buf[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { return }
        }
    }

    mutating func expect(_ c: UInt8) throws(MalformedBody) {
        guard pos < end, buf[pos] == c else {
            throw error("expected '\(Character(Unicode.Scalar(c)))'")
        }
        pos += 1
    }

    /// A key is matched on its raw bytes when it has no escapes (the usual case), else decoded.
    mutating func parseKey() throws(MalformedBody) -> Key {
        let start = pos + 1
        var i = start
        while i < end {
            let c = buf[i]
            if c == UInt8(ascii: "\"") {
                let raw = buf[start..<i]
                if raw.allSatisfy({ $0 < 0x80 }) {
                    pos = i + 1
                    return .raw(raw)
                }
                break
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { break }
            i += 1
        }
        return .decoded(try parseString())
    }

    mutating func parseString() throws(MalformedBody) -> String {
        try expect(UInt8(ascii: "\""))
        let start = pos
        var ascii = true
        // Fast path: no escapes.
        while pos < end {
            let c = buf[pos]
            if c == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: buf[start..<pos])
                pos += 1
                if ascii { return String(decoding: raw, as: UTF8.self) }
                guard let s = String(validating: raw, as: UTF8.self) else {
                    pos = start
                    throw error("string is not valid UTF-8")
                }
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("control character in a string (escape it)") }
            if c >= 0x80 { ascii = false }
            pos += 1
        }
        guard pos < end else { throw error("unterminated string") }
        // Slow path with escapes.
        var bytes = Array(buf[start..<pos])
        while pos < end {
            let c = buf[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                guard let s = String(validating: bytes, as: UTF8.self) else { throw error("string is not valid UTF-8") }
                return s
            }
            if c < 0x20 { throw error("control character in a string (escape it)") }
            if c != UInt8(ascii: "\\") { bytes.append(c); pos += 1; continue }
            pos += 1
            guard pos < end else { throw error("unterminated escape") }
            let e = buf[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): bytes.append(34)
            case UInt8(ascii: "\\"): bytes.append(92)
            case UInt8(ascii: "/"): bytes.append(47)
            case UInt8(ascii: "b"): bytes.append(8)
            case UInt8(ascii: "f"): bytes.append(12)
            case UInt8(ascii: "n"): bytes.append(10)
            case UInt8(ascii: "r"): bytes.append(13)
            case UInt8(ascii: "t"): bytes.append(9)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    guard pos + 1 < end, buf[pos] == 92, buf[pos + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired UTF-16 surrogate in \\u escape")
                    }
                    pos += 2
                    let low = try hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw error("invalid UTF-16 surrogate pair") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw error("unpaired UTF-16 surrogate in \\u escape")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                bytes.append(contentsOf: String(Character(u)).utf8)
            default:
                pos -= 1
                throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
            }
        }
        throw error("unterminated string")
    }

    mutating func hex4() throws(MalformedBody) -> UInt32 {
        guard end - pos >= 4 else { throw error("incomplete \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = buf[pos]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 97...102: d = UInt32(c - 87)
            case 65...70: d = UInt32(c - 55)
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v * 16 + d
            pos += 1
        }
        return v
    }

    /// A string at `pos` with no escapes, control characters or non-ASCII bytes: its bytes,
    /// with `pos` moved past it. nil (and `pos` unchanged) otherwise.
    mutating func plainASCIIString() -> UnsafeBufferPointer<UInt8>.SubSequence? {
        var i = pos + 1
        while i < end {
            let c = buf[i]
            if c == UInt8(ascii: "\"") {
                let raw = buf[(pos + 1)..<i]
                pos = i + 1
                return raw
            }
            if c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x80 { return nil }
            i += 1
        }
        return nil
    }

    /// Checks the JSON number grammar and returns its bytes.
    mutating func parseNumber() throws(MalformedBody) -> UnsafeBufferPointer<UInt8>.SubSequence {
        let start = pos
        if pos < end, buf[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < end else { throw error("incomplete number") }
        if buf[pos] == UInt8(ascii: "0") {
            pos += 1
        } else if buf[pos] >= 49 && buf[pos] <= 57 {
            while pos < end, buf[pos] >= 48, buf[pos] <= 57 { pos += 1 }
        } else {
            throw error("invalid number")
        }
        if pos < end, buf[pos] == UInt8(ascii: ".") {
            pos += 1
            let digits = pos
            while pos < end, buf[pos] >= 48, buf[pos] <= 57 { pos += 1 }
            guard pos > digits else { throw error("a number needs digits after '.'") }
        }
        if pos < end, buf[pos] == UInt8(ascii: "e") || buf[pos] == UInt8(ascii: "E") {
            pos += 1
            if pos < end, buf[pos] == UInt8(ascii: "+") || buf[pos] == UInt8(ascii: "-") { pos += 1 }
            let digits = pos
            while pos < end, buf[pos] >= 48, buf[pos] <= 57 { pos += 1 }
            guard pos > digits else { throw error("a number needs digits in its exponent") }
        }
        return buf[start..<pos]
    }

    mutating func literal(_ word: StaticString) throws(MalformedBody) {
        let n = word.utf8CodeUnitCount
        guard end - pos >= n else { throw error("invalid literal") }
        let p = word.utf8Start
        for k in 0..<n where buf[pos + k] != p[k] { throw error("invalid literal") }
        pos += n
    }

    /// Parses any value; arrays are validated and skipped (no record field is an array).
    mutating func parseValue(depth: Int = 0) throws(MalformedBody) -> Value {
        guard depth < 64 else { throw error("nesting deeper than 64 levels") }
        guard pos < end else { throw error("expected a value") }
        switch buf[pos] {
        case UInt8(ascii: "\""):
            if let raw = plainASCIIString() { return .asciiString(raw) }
            return .string(try parseString())
        case UInt8(ascii: "-"), 48...57: return .number(try parseNumber())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "["):
            pos += 1
            skipWhitespace()
            if pos < end, buf[pos] == UInt8(ascii: "]") { pos += 1; return .array }
            while true {
                skipWhitespace()
                _ = try parseValue(depth: depth + 1)
                skipWhitespace()
                guard pos < end else { throw error("unterminated array") }
                let c = buf[pos]
                pos += 1
                if c == UInt8(ascii: "]") { return .array }
                guard c == UInt8(ascii: ",") else { pos -= 1; throw error("expected ',' or ']' in the array") }
            }
        case UInt8(ascii: "{"):
            pos += 1
            var pairs: [(String, Value)] = []
            skipWhitespace()
            if pos < end, buf[pos] == UInt8(ascii: "}") { pos += 1; return .object(pairs) }
            while true {
                skipWhitespace()
                guard pos < end, buf[pos] == UInt8(ascii: "\"") else { throw error("expected a key in double quotes") }
                let key = try parseString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                let v = try parseValue(depth: depth + 1)
                pairs.append((key, v))
                skipWhitespace()
                guard pos < end else { throw error("unterminated object") }
                let c = buf[pos]
                pos += 1
                if c == UInt8(ascii: "}") { return .object(pairs) }
                guard c == UInt8(ascii: ",") else { pos -= 1; throw error("expected ',' or '}' in the object") }
            }
        default:
            throw error("unexpected character '\(Character(Unicode.Scalar(buf[pos])))'")
        }
    }

    mutating func skipValue() throws(MalformedBody) { _ = try parseValue() }
}
