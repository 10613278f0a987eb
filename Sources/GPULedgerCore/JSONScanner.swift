/// JSON scanning made for the record's shape: strict RFC 8259 grammar over the body's bytes.

enum JSONKey {
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

    var field: RecordField? {
        switch self {
        case .raw(let r): return RecordField(r)
        case .decoded(let s): return RecordField.names.firstIndex { $0.elementsEqual(s.utf8) }.flatMap { RecordField(rawValue: UInt32($0)) }
        }
    }
}

/// A parsed JSON value, kept only as far as the record rules need.
enum JSONValue {
    case null
    case bool(Bool)
    case string(String)
    /// A string without escapes, all ASCII: its bytes, not yet a String.
    case asciiString(UnsafeBufferPointer<UInt8>.SubSequence)
    /// The number's bytes, already checked against the JSON grammar.
    case number(UnsafeBufferPointer<UInt8>.SubSequence)
    case object([(String, JSONValue)])
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
struct JSONScanner {
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
    mutating func parseKey() throws(MalformedBody) -> JSONKey {
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
    mutating func parseValue(depth: Int = 0) throws(MalformedBody) -> JSONValue {
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
            var pairs: [(String, JSONValue)] = []
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
