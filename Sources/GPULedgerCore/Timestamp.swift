/// A UTC instant with microsecond resolution (PostgreSQL's `timestamptz` resolution).
///
/// Parsing and formatting are done by hand, on bytes, because ingest parses one timestamp per
/// record and Foundation's ISO 8601 formatters are far slower than the rest of the record.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var microseconds: Int64

    public init(microseconds: Int64) { self.microseconds = microseconds }

    public init(secondsSince1970 seconds: Int64) { self.microseconds = seconds * 1_000_000 }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.microseconds < b.microseconds }

    public func adding(seconds: Int64) -> Timestamp { Timestamp(microseconds: microseconds + seconds * 1_000_000) }

    /// Microseconds in an hour and in a day (UTC has no leap seconds here, as in PostgreSQL).
    public static let hour: Int64 = 3_600_000_000
    public static let day: Int64 = 86_400_000_000

    /// The start of the hour this instant is in.
    public var hourStart: Timestamp { Timestamp(microseconds: microseconds.floorDivided(by: Self.hour) * Self.hour) }
    /// The start of the UTC day this instant is in.
    public var dayStart: Timestamp { Timestamp(microseconds: microseconds.floorDivided(by: Self.day) * Self.day) }
    /// This instant moved by `n` hours.
    public func adding(hours n: Int64) -> Timestamp { Timestamp(microseconds: microseconds + n * Self.hour) }
    /// This instant moved by `n` days of 24 hours.
    public func adding(days n: Int64) -> Timestamp { Timestamp(microseconds: microseconds + n * Self.day) }

    /// The current time, from the system clock. Only `WallClock.system` reads it: everything else
    /// takes its "now" from a clock it is given.
    static func systemNow() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(microseconds: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000)
    }

    /// RFC 3339, UTC, `Z`, with a fraction only when there is one (`2026-11-28T10:00:00.5Z`).
    public var description: String { rfc3339 }

    public var rfc3339: String {
        var out = [UInt8]()
        out.reserveCapacity(32)
        append(to: &out, separator: UInt8(ascii: "T"), zone: "Z")
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `YYYY-MM-DD<sep>HH:MM:SS[.ffffff]<zone>`.
    public func append(to out: inout [UInt8], separator: UInt8, zone: StaticString) {
        let (days, micros) = Self.floorDivMod(microseconds, 86_400_000_000)
        let (y, m, d) = Self.civil(fromDays: days)
        let secs = micros / 1_000_000
        let frac = micros % 1_000_000
        Self.appendPadded(&out, y, 4)
        out.append(UInt8(ascii: "-"))
        Self.appendPadded(&out, m, 2)
        out.append(UInt8(ascii: "-"))
        Self.appendPadded(&out, d, 2)
        out.append(separator)
        Self.appendPadded(&out, secs / 3600, 2)
        out.append(UInt8(ascii: ":"))
        Self.appendPadded(&out, (secs / 60) % 60, 2)
        out.append(UInt8(ascii: ":"))
        Self.appendPadded(&out, secs % 60, 2)
        if frac != 0 {
            out.append(UInt8(ascii: "."))
            var f = frac
            var digits = 6
            while f % 10 == 0 { f /= 10; digits -= 1 }
            Self.appendPadded(&out, f, digits)
        }
        zone.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    static func appendPadded(_ out: inout [UInt8], _ value: Int64, _ width: Int) {
        var buf: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (48, 48, 48, 48, 48, 48, 48, 48)
        var v = value
        var n = 0
        withUnsafeMutableBytes(of: &buf) { p in
            var i = 7
            repeat {
                p[i] = UInt8(48 + v % 10)
                v /= 10
                i -= 1
                n += 1
            } while v > 0 && i >= 0
            let count = max(n, width)
            out.append(contentsOf: p[(8 - count)...])
        }
    }

    static func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        var q = a / b
        var r = a % b
        if r < 0 { q -= 1; r += b }
        return (q, r)
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    public static func civil(fromDays z0: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    static func daysInMonth(_ year: Int64, _ month: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Parses an RFC 3339 timestamp (`2026-11-28T10:00:00Z`, `2026-11-28T10:00:00.123+01:00`).
    /// Fractions beyond microseconds are truncated. Returns nil when the text is not one.
    public static func parseRFC3339<C: Collection>(_ s: C) -> Timestamp? where C.Element == UInt8, C.Index == Int {
        var i = s.startIndex
        let end = s.endIndex
        func digits(_ n: Int) -> Int64? {
            guard end - i >= n else { return nil }
            var v: Int64 = 0
            for _ in 0..<n {
                let c = s[i]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int64(c - 48)
                i += 1
            }
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < end, s[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")),
              let month = digits(2), expect(UInt8(ascii: "-")),
              let day = digits(2) else { return nil }
        guard i < end, s[i] == UInt8(ascii: "T") || s[i] == UInt8(ascii: "t") || s[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let hour = digits(2), expect(UInt8(ascii: ":")),
              let minute = digits(2), expect(UInt8(ascii: ":")),
              let second = digits(2) else { return nil }
        var micros: Int64 = 0
        if i < end, s[i] == UInt8(ascii: ".") {
            i += 1
            var n = 0
            while i < end, s[i] >= 48, s[i] <= 57 {
                if n < 6 { micros = micros * 10 + Int64(s[i] - 48) }
                n += 1
                i += 1
            }
            guard n > 0 else { return nil }
            while n < 6 { micros *= 10; n += 1 }
        }
        var offsetMinutes: Int64 = 0
        guard i < end else { return nil }
        if s[i] == UInt8(ascii: "Z") || s[i] == UInt8(ascii: "z") {
            i += 1
        } else if s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") {
            let negative = s[i] == UInt8(ascii: "-")
            i += 1
            guard let oh = digits(2), expect(UInt8(ascii: ":")), let om = digits(2), oh <= 23, om <= 59 else { return nil }
            offsetMinutes = (oh * 60 + om) * (negative ? -1 : 1)
        } else {
            return nil
        }
        guard i == end else { return nil }
        guard year >= 1, month >= 1, month <= 12, day >= 1, day <= daysInMonth(year, month),
              hour <= 23, minute <= 59, second <= 59 else { return nil }
        let days = Self.days(year: year, month: month, day: day)
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offsetMinutes * 60
        return Timestamp(microseconds: secs * 1_000_000 + micros)
    }

    /// A bare date (`2026-11-28`, its midnight UTC) or an RFC 3339 timestamp.
    public static func parseDateOrTime(_ s: String) -> Timestamp? {
        s.utf8.count == 10 ? parseRFC3339(s + "T00:00:00Z") : parseRFC3339(s)
    }

    /// The years a time in a request may be written in (`from`, `at`, `as_of`, a capacity event's
    /// `at`): from the Unix epoch, and far enough from year 10000 that a forecast's horizon or a
    /// year's window after it is still a time PostgreSQL can hold.
    public static let requestYears: ClosedRange<Int> = 1970...8999

    /// A date or RFC 3339 time written with a year in `requestYears`, as the API takes them.
    public static func parseRequestTime(_ s: String) -> Timestamp? {
        guard let year = Int(s.prefix(4)), requestYears.contains(year) else { return nil }
        return parseDateOrTime(s)
    }

    public static func parseRFC3339(_ s: String) -> Timestamp? {
        var s = s
        return s.withUTF8 { parseRFC3339($0) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
