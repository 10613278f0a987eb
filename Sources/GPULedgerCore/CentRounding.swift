import Foundation

/// Rounding money to cents only at the end, without losing a cent in a split.
public enum CentRounding {
    /// Rounds each exact amount to cents so that the rounded parts add up to the exact total
    /// rounded to cents (largest-remainder, or Hamilton, apportionment): every part gets its
    /// amount rounded down, and the cents still missing go one each to the parts with the largest
    /// remainders (ties: the larger amount, then the earlier part). `Decimal` is exact for these
    /// sums (38 significant digits); no `Double` is involved.
    public static func largestRemainder(_ amounts: [Decimal]) -> [Decimal] {
        apportion(amounts, target: rounded(amounts.reduce(Decimal(0), +), scale: 2, .plain))
    }

    /// `value` rounded to `scale` decimal places in `mode` (`.down` is toward negative infinity).
    public static func rounded(_ value: Decimal, scale: Int, _ mode: NSDecimalNumber.RoundingMode) -> Decimal {
        var input = value
        var output = Decimal()
        NSDecimalRound(&output, &input, scale, mode)
        return output
    }

    /// Exact decimal text (`"12.345678"`) to `Decimal`; nil when it is not a plain decimal.
    public static func decimal(_ text: String) -> Decimal? {
        Decimal(string: text, locale: posix)
    }

    static let posix = Locale(identifier: "en_US_POSIX")

    /// `value` × 10^`n`, exactly: its decimal exponent moved (a `Decimal` division by 100 costs
    /// microseconds; this, nanoseconds).
    static func shifted(_ value: Decimal, by n: Int) -> Decimal {
        Decimal(sign: value.sign, exponent: value.exponent + n, significand: value.significand)
    }

    /// A cent amount as the wire's decimal string with two places (`"12.30"`).
    public static func cents(_ value: Decimal) -> String {
        let r = rounded(value, scale: 2, .plain)
        let negative = r < 0
        let magnitude = negative ? -r : r
        let whole = rounded(magnitude, scale: 0, .down)
        let frac = NSDecimalNumber(decimal: (magnitude - whole) * 100).intValue
        let fracText = frac < 10 ? "0\(frac)" : "\(frac)"
        return "\(negative ? "-" : "")\(NSDecimalNumber(decimal: whole).stringValue).\(fracText)"
    }
}

extension CentRounding {
    /// Rounds each exact, non-negative amount to cents so that the parts add up to `target`
    /// (a whole number of cents within a cent per part of the exact sum): every part gets its
    /// amount rounded down, then the cents still missing go one each to the largest remainders
    /// (ties: the larger amount, then the earlier part); cents over the target come back from
    /// the smallest remainders among parts that have a cent to give.
    public static func apportion(_ amounts: [Decimal], target: Decimal) -> [Decimal] {
        guard !amounts.isEmpty else { return [] }
        let targetCents = rounded(shifted(target, by: 2), scale: 0, .plain)
        var floors = amounts.map { rounded(shifted($0, by: 2), scale: 0, .down) }
        let remainders = zip(amounts, floors).map { shifted($0, by: 2) - $1 }
        // Whole cents, a few per part at most.
        var missing = NSDecimalNumber(decimal: targetCents - floors.reduce(Decimal(0), +)).intValue
        let order = amounts.indices.sorted { a, b in
            if remainders[a] != remainders[b] { return remainders[a] > remainders[b] }
            if amounts[a] != amounts[b] { return amounts[a] > amounts[b] }
            return a < b
        }
        var i = 0
        while missing > 0 {
            floors[order[i % order.count]] += 1
            missing -= 1
            i += 1
        }
        var j = order.count - 1
        var passes = 0
        while missing < 0, passes < 2 * order.count * 100 {
            let k = order[(j % order.count + order.count) % order.count]
            if floors[k] > 0 { floors[k] -= 1; missing += 1 }
            j -= 1
            passes += 1
        }
        return floors.map { shifted($0, by: -2) }
    }

    /// An exact amount as a decimal string with at least two places ("25000.00", "4.125"): a
    /// budget's amount as it was given, never rounded.
    public static func amount(_ d: Decimal) -> String {
        rounded(d, scale: 2, .plain) == d ? cents(d) : "\(d)"
    }
}
