import GPULedgerCore

/// Splits a SQL script into statements, for a driver that runs one statement per query.
///
/// Semicolons inside comments (`--`, `/* */`, nested), quoted strings (`'…'`, `E'…'`),
/// quoted identifiers (`"…"`) and dollar-quoted bodies (`$$…$$`, `$fn$…$fn$`) do not split.
/// Statements that hold only whitespace and comments are dropped.
public enum SQLSplitter {
    public static func split(_ sql: String) -> [String] {
        let b = Array(sql.utf8)
        var out: [String] = []
        var start = 0
        var i = 0
        var hasCode = false
        func flush(_ end: Int) {
            if hasCode {
                let text = String(decoding: b[start..<end], as: UTF8.self)
                out.append(text.trimmingWhitespace())
            }
            start = end + 1
            hasCode = false
        }
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "-"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "-") {
                while i < b.count, b[i] != 0x0A { i += 1 }
                continue
            }
            if c == UInt8(ascii: "/"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "*") {
                var depth = 1
                i += 2
                while i < b.count, depth > 0 {
                    if b[i] == UInt8(ascii: "/"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "*") { depth += 1; i += 2; continue }
                    if b[i] == UInt8(ascii: "*"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "/") { depth -= 1; i += 2; continue }
                    i += 1
                }
                continue
            }
            if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                hasCode = true
                let backslashEscapes = c == UInt8(ascii: "'") && i > 0 && (b[i - 1] == UInt8(ascii: "E") || b[i - 1] == UInt8(ascii: "e"))
                i += 1
                while i < b.count {
                    if backslashEscapes, b[i] == UInt8(ascii: "\\") { i += 2; continue }
                    if b[i] == c {
                        if i + 1 < b.count, b[i + 1] == c { i += 2; continue } // doubled quote
                        break
                    }
                    i += 1
                }
                i += 1
                continue
            }
            if c == UInt8(ascii: "$"), let tagEnd = dollarTagEnd(b, i) {
                hasCode = true
                let tag = b[i...tagEnd]
                var j = tagEnd + 1
                var closed = false
                while j + tag.count <= b.count {
                    if b[j] == UInt8(ascii: "$"), b[j..<(j + tag.count)].elementsEqual(tag) { closed = true; break }
                    j += 1
                }
                i = closed ? j + tag.count : b.count
                continue
            }
            if c == UInt8(ascii: ";") {
                flush(i)
                i += 1
                continue
            }
            if !(c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09) { hasCode = true }
            i += 1
        }
        if start < b.count { flush(b.count) }
        return out
    }

    /// `$tag$` starting at `i` (tag: letters, digits, underscore, not starting with a digit); the index of its closing `$`.
    static func dollarTagEnd(_ b: [UInt8], _ i: Int) -> Int? {
        if i > 0 {
            let p = b[i - 1]
            // `$1` parameters and identifiers containing `$` are not dollar quotes.
            if isIdent(p) { return nil }
        }
        var j = i + 1
        while j < b.count, b[j] != UInt8(ascii: "$") {
            guard isIdent(b[j]), !(j == i + 1 && b[j] >= 48 && b[j] <= 57) else { return nil }
            j += 1
        }
        return j < b.count ? j : nil
    }

    static func isIdent(_ c: UInt8) -> Bool {
        (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 95 || c >= 0x80
    }
}
