extension String {
    /// Without leading and trailing ASCII whitespace (space, tab, CR, LF).
    public func trimmingWhitespace() -> String {
        let u = Array(utf8)
        var s = 0
        var e = u.count
        func ws(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
        while s < e, ws(u[s]) { s += 1 }
        while e > s, ws(u[e - 1]) { e -= 1 }
        return String(decoding: u[s..<e], as: UTF8.self)
    }
}
