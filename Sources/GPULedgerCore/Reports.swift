import Foundation

/// One `group_by` key of a report (`/v1/costs`, `/v1/stats`).
public enum GroupKey: Sendable, Hashable, CustomStringConvertible {
    case tenant, model, accelerator, pool, day, hour, month
    case label(String)

    /// The key as written in `group_by` and used as the row's field name (`label:team`).
    public var description: String {
        switch self {
        case .tenant: "tenant"
        case .model: "model"
        case .accelerator: "accelerator"
        case .pool: "pool"
        case .day: "day"
        case .hour: "hour"
        case .month: "month"
        case .label(let k): "label:\(k)"
        }
    }

    /// Parses a `group_by` value (`tenant,day,label:team`). Throws a message naming the bad item.
    public static func parseList(_ text: String) throws(ReportQueryError) -> [GroupKey] {
        var keys: [GroupKey] = []
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = String(raw).trimmingWhitespace()
            let key: GroupKey
            switch item {
            case "tenant": key = .tenant
            case "model": key = .model
            case "accelerator": key = .accelerator
            case "pool": key = .pool
            case "day": key = .day
            case "hour": key = .hour
            case "month": key = .month
            default:
                // By bytes and code points, as the OpenAPI pattern reads it: a key that begins with
                // a combining mark (an emoji skin tone) must not merge with the colon.
                if item.utf8.starts(with: "label:".utf8) {
                    let name = String(decoding: item.utf8.dropFirst(6), as: UTF8.self)
                    guard (1...64).contains(name.unicodeScalars.count) else {
                        throw ReportQueryError("group_by: \(item) names no label key (label:KEY, KEY 1–64 characters)")
                    }
                    key = .label(name)
                } else {
                    throw ReportQueryError("group_by: unknown key \(JSONText.quoted(item)); use tenant, model, accelerator, pool, day, hour, month or label:KEY")
                }
            }
            // A key given twice groups once.
            if !keys.contains(key) { keys.append(key) }
        }
        guard keys.count <= 8 else { throw ReportQueryError("group_by: at most 8 keys") }
        return keys
    }
}

public struct ReportQueryError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A calendar month in UTC (`2026-11`), as `[start, end)`.
public struct Period: Sendable, Hashable, CustomStringConvertible, Codable, Comparable {
    public var year: Int64
    public var month: Int64

    public init(year: Int64, month: Int64) { self.year = year; self.month = month }

    public static func parse(_ text: String) -> Period? {
        let b = Array(text.utf8)
        guard b.count == 7, b[4] == UInt8(ascii: "-") else { return nil }
        func digits(_ r: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for i in r { guard b[i] >= 48, b[i] <= 57 else { return nil }; v = v * 10 + Int64(b[i] - 48) }
            return v
        }
        guard let y = digits(0..<4), let m = digits(5..<7), (1...12).contains(m), y >= 1970 else { return nil }
        return Period(year: y, month: m)
    }

    /// The month holding `t`.
    public static func containing(_ t: Timestamp) -> Period {
        let days = t.microseconds.floorDivided(by: Timestamp.day)
        let c = Timestamp.civil(fromDays: days)
        return Period(year: c.year, month: c.month)
    }

    public var start: Timestamp { Timestamp(secondsSince1970: Timestamp.days(year: year, month: month, day: 1) * 86_400) }
    public var end: Timestamp { next.start }
    public var next: Period { month == 12 ? Period(year: year + 1, month: 1) : Period(year: year, month: month + 1) }
    public var description: String { String(format: "%04d-%02d", Int(year), Int(month)) }
    public var previous: Period { month == 1 ? Period(year: year - 1, month: 12) : Period(year: year, month: month - 1) }
    public static func < (a: Period, b: Period) -> Bool { (a.year, a.month) < (b.year, b.month) }
}

/// Minimal CSV writing (RFC 4180): fields with a comma, quote, CR or LF are quoted, quotes doubled.
public enum CSVText {
    public static func field(_ s: String) -> String {
        if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return s
    }

    public static func line(_ fields: [String]) -> String {
        fields.map(field).joined(separator: ",") + "\r\n"
    }
}
