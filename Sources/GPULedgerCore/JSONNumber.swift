/// A JSON number's bytes as a `Double`, the same value as `Double(String)` (correctly rounded)
/// without making a string or calling `strtod` for the numbers records carry: at most 2^53 as
/// an integer of its digits and a power of ten up to 10^22 either way, where one multiplication
/// or division of two exact doubles rounds once and so gives the correctly rounded value
/// (Clinger's fast path). Anything else goes to `Double(String)`. `raw` is a number as
/// `JSONScanner.parseNumber` accepts it (the JSON grammar).
enum JSONNumber {
    static let powers: [Double] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                   1e18, 1e19, 1e20, 1e21, 1e22]
    static let largestExact: UInt64 = 1 << 53

    static func double(_ raw: UnsafeBufferPointer<UInt8>.SubSequence) -> Double? {
        var i = raw.startIndex
        let end = raw.endIndex
        var negative = false
        if i < end, raw[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        var digits: UInt64 = 0
        var scale = 0
        var exact = true
        while i < end, raw[i] &- 48 < 10 {
            if digits <= largestExact { digits = digits * 10 + UInt64(raw[i] &- 48) } else { exact = false }
            i += 1
        }
        if i < end, raw[i] == UInt8(ascii: ".") {
            i += 1
            while i < end, raw[i] &- 48 < 10 {
                if digits <= largestExact { digits = digits * 10 + UInt64(raw[i] &- 48); scale -= 1 } else { exact = false }
                i += 1
            }
        }
        if i < end, raw[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            var minus = false
            if i < end, raw[i] == UInt8(ascii: "+") || raw[i] == UInt8(ascii: "-") { minus = raw[i] == UInt8(ascii: "-"); i += 1 }
            var e = 0
            while i < end, raw[i] &- 48 < 10 {
                if e < 100_000 { e = e * 10 + Int(raw[i] &- 48) }
                i += 1
            }
            scale += minus ? -e : e
        }
        guard exact, i == end, digits <= largestExact, scale >= -22, scale <= 22 else {
            return Double(String(decoding: UnsafeBufferPointer(rebasing: raw), as: UTF8.self))
        }
        let magnitude = scale >= 0 ? Double(digits) * powers[scale] : Double(digits) / powers[-scale]
        return negative ? -magnitude : magnitude
    }
}
