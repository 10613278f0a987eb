import Foundation
import GPULedgerCore
import Hummingbird

/// A report's query string, strict: an unknown or repeated parameter is a 400 (a typo must not
/// silently widen a report).
public struct Query {
    public var values: [String: String] = [:]

    public init(_ request: Request, allowed: Set<String>) throws {
        for (key, value) in request.uri.queryParameters {
            let k = String(key)
            guard allowed.contains(k) else {
                throw AppError.badRequest("unknown query parameter \(k); this endpoint takes \(allowed.sorted().joined(separator: ", "))", code: "bad_query")
            }
            guard values[k] == nil else { throw AppError.badRequest("query parameter \(k) is given twice", code: "bad_query") }
            values[k] = String(value)
        }
    }

    public func get(_ key: String) -> String? { values[key] }

    public func acceptsCSV(_ request: Request) -> Bool {
        (request.headers[.accept] ?? "").lowercased().contains("text/csv")
    }

    /// `format=csv` or `Accept: text/csv`.
    public func wantsCSV(_ request: Request, allowed: [String]) throws -> Bool {
        if let f = get("format") {
            guard allowed.contains(f) else {
                throw AppError.badRequest("format=\(f) is not one of \(allowed.joined(separator: ", "))", code: "bad_query")
            }
            return f == "csv"
        }
        return acceptsCSV(request)
    }

    /// A date or RFC 3339 time parameter; nil when absent, 400 when it is not one.
    public func time(_ key: String) throws -> Timestamp? {
        guard let text = get(key) else { return nil }
        guard let t = Timestamp.parseRequestTime(text) else {
            throw AppError.badRequest("\(key)=\(text) is not a date (2026-11-28) or an RFC 3339 time in a year from 1970 to 8999", code: "bad_query")
        }
        return t
    }

    /// `from`/`to` (half-open); by default from the start of the current month (or what
    /// `defaultFrom` says, given `to`) to now. Without `to`, a `from` after now is an empty range
    /// (`to` = `from`), not an error.
    public func range(now: Timestamp, defaultFrom: ((Timestamp) -> Timestamp)? = nil) throws -> (Timestamp, Timestamp) {
        let given = try time("from")
        let to = try time("to") ?? max(now, given ?? now)
        let from = given ?? defaultFrom?(to) ?? Period.containing(to.microseconds > 0 ? Timestamp(microseconds: to.microseconds - 1) : to).start
        guard from <= to else {
            throw AppError.badRequest("from=\(from.rfc3339) is after to=\(to.rfc3339)", code: "bad_query")
        }
        return (from, to)
    }

    /// An integer parameter in `range`; `value` when absent.
    public func integer(_ key: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = get(key) else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw AppError.badRequest("\(key)=\(text) must be an integer from \(range.lowerBound) to \(range.upperBound)", code: "bad_query")
        }
        return n
    }

    /// A finite number parameter for which `valid` holds (`rule` says which); `value` when absent.
    public func fraction(_ key: String, default value: Double, _ valid: (Double) -> Bool, _ rule: String) throws -> Double {
        guard let text = get(key) else { return value }
        guard let x = Double(text), x.isFinite, valid(x) else { throw AppError.badRequest("\(key)=\(text) must be \(rule)", code: "bad_query") }
        return x
    }

    /// `period=YYYY-MM`, or the month of `now` when absent.
    public func period(now: Timestamp) throws -> Period {
        guard let text = get("period") else { return Period.containing(now) }
        guard let p = Period.parse(text) else { throw AppError.badRequest("period=\(text) is not a month (2026-11)", code: "bad_query") }
        return p
    }

    /// A capacity plan's `horizon_days`, `target_utilization`, `coverage` and `budget_usd`, for
    /// the API and the console alike (a form's blank budget field is no budget).
    public func capacityOptions(blankBudgetIsNone: Bool = false) throws -> (horizonDays: Int, target: Double, coverage: Double, budget: Decimal?) {
        let horizon = try integer("horizon_days", default: 30, range: 1...366)
        let target = try fraction("target_utilization", default: 0.7, { $0 > 0 && $0 <= 1 }, "a number above 0 and at most 1")
        let coverage = try fraction("coverage", default: 0.9, { $0 >= 0.5 && $0 <= 0.99 }, "a number from 0.5 to 0.99")
        var budget: Decimal?
        if var text = get("budget_usd") {
            if blankBudgetIsNone { text = text.trimmingCharacters(in: .whitespaces) }
            if !(blankBudgetIsNone && text.isEmpty) {
                guard RateCards.isPlainDecimal(text), let d = CentRounding.decimal(text) else {
                    throw AppError.badRequest("budget_usd=\(text) must be a decimal amount such as 25000 or 25000.50", code: "bad_query")
                }
                budget = d
            }
        }
        return (horizon, target, coverage, budget)
    }
}
