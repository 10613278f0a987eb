import Foundation

/// A spending limit for a tenant (or the whole fleet) over a calendar period in UTC. Its spend is
/// always summed from the ledger; nothing here counts.
public struct Budget: Sendable, Equatable {
    public enum Cadence: String, Sendable, CaseIterable { case monthly, quarterly, yearly }
    public enum Basis: String, Sendable, CaseIterable { case usage, total }
    public enum State: String, Sendable { case ok, warning, at_risk, exceeded }

    public var name: String
    /// nil: the whole fleet.
    public var tenant: String?
    public var period: Cadence
    public var amount: Decimal
    /// Fractions of the amount, ascending.
    public var thresholds: [Decimal]
    public var basis: Basis

    public init(name: String, tenant: String?, period: Cadence, amount: Decimal, thresholds: [Decimal], basis: Basis) {
        self.name = name; self.tenant = tenant; self.period = period; self.amount = amount
        self.thresholds = thresholds; self.basis = basis
    }

    public static let defaultThresholds: [Decimal] = [Decimal(string: "0.5")!, Decimal(string: "0.8")!, 1]

    /// A budget name: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$` (it is a path segment).
    public static func validName(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard (1...128).contains(b.count) else { return false }
        func ok(_ c: UInt8, first: Bool) -> Bool {
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (!first && (c == 46 || c == 95 || c == 45))
        }
        return b.enumerated().allSatisfy { ok($0.element, first: $0.offset == 0) }
    }

    /// The calendar period `[start, end)` holding `t`.
    public static func window(_ cadence: Cadence, at t: Timestamp) -> (start: Timestamp, end: Timestamp) {
        let c = Timestamp.civil(fromDays: t.microseconds.floorDivided(by: Timestamp.day))
        let (startMonth, months): (Int64, Int64) = switch cadence {
        case .monthly: (c.month, 1)
        case .quarterly: ((c.month - 1) / 3 * 3 + 1, 3)
        case .yearly: (1, 12)
        }
        let endMonth = startMonth + months
        let start = Timestamp(secondsSince1970: Timestamp.days(year: c.year, month: startMonth, day: 1) * 86_400)
        let end = Timestamp(secondsSince1970: Timestamp.days(year: endMonth > 12 ? c.year + 1 : c.year,
                                                             month: endMonth > 12 ? endMonth - 12 : endMonth, day: 1) * 86_400)
        return (start, end)
    }
}

/// A budget's standing at a moment.
public struct BudgetStatus: Sendable, Equatable {
    public var budget: Budget
    public var periodStart: Timestamp
    public var periodEnd: Timestamp
    /// Exact spend in `[periodStart, at)`.
    public var spent: Decimal
    /// The period's total: spent plus the forecast of the rest, in cents.
    public var forecastP10: Decimal
    public var forecastP50: Decimal
    public var forecastP90: Decimal
    /// `YYYY-MM-DD`, or nil when the amount is not reached within the period.
    public var projectedExhaustionDate: String?
    public var state: Budget.State
    public var thresholdsCrossed: [Decimal]
    public var method: String
    /// The path to the period's end, when asked for (the console's burn-up chart).
    public var burnUp: BurnUp?

    public init(budget: Budget, periodStart: Timestamp, periodEnd: Timestamp, spent: Decimal, forecastP10: Decimal, forecastP50: Decimal,
                forecastP90: Decimal, projectedExhaustionDate: String?, state: Budget.State, thresholdsCrossed: [Decimal], method: String) {
        self.budget = budget; self.periodStart = periodStart; self.periodEnd = periodEnd; self.spent = spent
        self.forecastP10 = forecastP10; self.forecastP50 = forecastP50; self.forecastP90 = forecastP90
        self.projectedExhaustionDate = projectedExhaustionDate; self.state = state; self.thresholdsCrossed = thresholdsCrossed
        self.method = method
    }

    /// `exceeded`: spent ≥ amount; else `at_risk`: the p50 forecast for the period end over the
    /// amount; else `warning`: a threshold below 1 crossed; else `ok`.
    public static func state(budget: Budget, spent: Decimal, forecastP50: Decimal) -> (Budget.State, [Decimal]) {
        let crossed = budget.thresholds.filter { spent >= $0 * budget.amount }
        if spent >= budget.amount { return (.exceeded, crossed) }
        if forecastP50 > budget.amount { return (.at_risk, crossed) }
        if crossed.contains(where: { $0 < 1 }) { return (.warning, crossed) }
        return (.ok, crossed)
    }
}

/// A budget's burn-up: spend to date accumulated day by day, then the forecast of the
/// cumulative spend at the end of each remaining day (p10, p50, p90).
public struct BurnUp: Sendable, Equatable {
    public struct Point: Sendable, Equatable {
        public var day: String
        public var p10, p50, p90: Decimal
    }
    /// Cumulative spend at the end of each day of the period with spend, up to `at` (exact).
    public var actual: [(day: String, cumulative: Decimal)]
    /// Cumulative spend forecast at the end of each day from the one holding `at`, in cents (the
    /// last is the status's forecast).
    public var forecast: [Point]

    public static func == (a: BurnUp, b: BurnUp) -> Bool {
        a.forecast == b.forecast && a.actual.map(\.day) == b.actual.map(\.day) && a.actual.map(\.cumulative) == b.actual.map(\.cumulative)
    }
}

/// The projection of a period's spend: what is spent to date plus the forecast of the rest of
/// the period, with the interval of that remaining total (the days' forecasts are correlated).
public enum BudgetProjection {
    /// `days`: the period's days from the day holding `at` on (their `YYYY-MM-DD`), `weights`:
    /// the part of each still to come (the current day's remaining fraction, then 1s);
    /// `spentByDay`: the spend of the period's days before, ascending, for an exhaustion already
    /// past. Quantiles rounded to cents.
    public static func project(budget: Budget, spent: Decimal, spentByDay: [(day: String, amount: Decimal)],
                               forecast: Forecaster.Forecast?, days: [String], weights: [Double])
        -> (p10: Decimal, p50: Decimal, p90: Decimal, exhaustion: String?)
    {
        var p10 = spent, p50 = spent, p90 = spent
        if let forecast, !weights.isEmpty {
            let q = forecast.weightedSumQuantiles(weights, [0.1, 0.5, 0.9])
            p10 += money(q[0])
            p50 += money(q[1])
            p90 += money(q[2])
        }
        let round = { (d: Decimal) in CentRounding.rounded(d, scale: 2, .plain) }
        // The day the amount is first reached: in the past from the ledger, else on the p50 path.
        var exhaustion: String?
        if spent >= budget.amount {
            var cumulative: Decimal = 0
            for (day, amount) in spentByDay {
                cumulative += amount
                if cumulative >= budget.amount { exhaustion = day; break }
            }
            exhaustion = exhaustion ?? days.first
        } else if let forecast {
            var cumulative = spent
            for (i, day) in days.enumerated() where i < weights.count && i < forecast.mean.count {
                cumulative += money(max(forecast.mean[i], 0) * weights[i])
                if cumulative >= budget.amount { exhaustion = day; break }
            }
        }
        return (round(p10), round(p50), round(p90), exhaustion)
    }

    /// The burn-up to the period's end: `spentByDay` accumulated, then for each of `days` the
    /// spend to date plus the quantiles of the forecast sum up to that day's end.
    public static func burnUp(spent: Decimal, spentByDay: [(day: String, amount: Decimal)], forecast: Forecaster.Forecast?,
                              days: [String], weights: [Double]) -> BurnUp {
        var cumulative: Decimal = 0
        let actual = spentByDay.map { (day: String, amount: Decimal) -> (day: String, cumulative: Decimal) in
            cumulative += amount
            return (day, cumulative)
        }
        var points: [BurnUp.Point] = []
        if let forecast {
            for (i, day) in days.enumerated() where i < weights.count {
                let q = forecast.weightedSumQuantiles(Array(weights.prefix(i + 1)), [0.1, 0.5, 0.9])
                let round = { (d: Decimal) in CentRounding.rounded(d, scale: 2, .plain) }
                points.append(.init(day: day, p10: round(spent + money(q[0])), p50: round(spent + money(q[1])), p90: round(spent + money(q[2]))))
            }
        }
        return BurnUp(actual: actual, forecast: points)
    }

    /// A forecast figure (a plain number) as a decimal amount to the cent.
    public static func money(_ x: Double) -> Decimal {
        guard x.isFinite else { return 0 }
        return CentRounding.rounded(Decimal(string: String(format: "%.4f", x), locale: Locale(identifier: "en_US_POSIX")) ?? 0, scale: 2, .plain)
    }
}

extension Int64 {
    /// Division rounding toward negative infinity.
    public func floorDivided(by d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}
