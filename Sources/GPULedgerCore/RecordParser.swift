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
    /// Some record names a pool, not one of `tokenPools`, and leaves out `gpu_seconds`: valid if
    /// that pool allocates by tokens (a caller that did not look them up can, and parse again).
    public var poolWithoutGPUSeconds = false
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
    /// The most tokens of one kind a record may carry; by default any count that fits in 64 bits.
    public var maxTokens: Int64
    /// The service's bound (10^12): far above any request, and low enough that the summaries'
    /// 64-bit sums of a pool-hour cannot overflow (the fuzzer found that two records of 2^62
    /// tokens made every report over them fail).
    public static let serviceMaxTokens: Int64 = 1_000_000_000_000

    /// The pools that allocate by tokens: a record on one of them may leave out `gpu_seconds`.
    public var tokenPools: Set<String>

    public init(now: Timestamp, knownAccelerators: Set<String>? = nil, maxTokens: Int64 = .max, tokenPools: Set<String> = []) {
        self.tokenPools = tokenPools
        self.now = now
        self.knownAccelerators = knownAccelerators
        self.maxTokens = maxTokens
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
        return ParsedBatch(records: state.records, errors: state.errors, invalidRecords: state.invalid, count: state.count,
                           poolWithoutGPUSeconds: state.poolWithoutGPUSeconds)
    }
}

struct ParseState {
    let parser: RecordParser
    var records: [UsageRecord] = []
    var errors: [FieldError] = []
    var invalid = 0
    var count = 0
    var poolWithoutGPUSeconds = false
    /// Accelerators of this batch found in `parser.knownAccelerators` (the first 16).
    var knownAccelerators: [String] = []

    init(parser: RecordParser) { self.parser = parser }

    mutating func parseJSONBody(_ buf: UnsafeBufferPointer<UInt8>) throws(MalformedBody) {
        var s = JSONScanner(buf: buf, pos: 0, end: buf.count, line: nil)
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

    mutating func parseArray(_ s: inout JSONScanner) throws(MalformedBody) {
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
            var s = JSONScanner(buf: buf, pos: lineStart, end: contentEnd, line: line)
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
}
