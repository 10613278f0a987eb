import Foundation

/// Forecasts the peak of demand (busy GPUs) per day and over a horizon, at a stated coverage.
///
/// Capacity has to hold the busiest hour, so the planner forecasts the series of *daily peaks*
/// (the busiest hour of each 24 hours), not every hour: an outage hour or a quiet night does not
/// move it, and it has no hourly random walk whose upper quantile grows without bound.
/// - Point forecast, on the log of the daily peaks: the mean of the last 7 days, less a
///   day-of-week effect once there are two weeks, plus a trend (the last week's mean against the
///   week before, at most ±3% a day) damped by 0.9 a day.
/// - Two centers for the horizon's peak: the median of the *maximum* over the horizon's days under
///   that forecast (day-to-day errors from the series' own one-day-ahead residuals), and the last
///   7 days' highest peak moved by the damped trend.
/// - Margin: split-conformal on the series' own history. At each of the last 21 earlier days with
///   at least 4 days behind it, the same forecast is made from the data up to that day and its
///   error against the realized peak of the next `h` days is kept; the plan adds the error of rank
///   ⌈(n + 1) × coverage⌉ to its center, which makes it hold with the stated coverage when the
///   recent past is like the future. A horizon of a week or more uses the last week's peak as its
///   center (it spans every weekday); a shorter one the center whose errors lie tighter around it.
///   While a horizon has too few errors, those of the longest shorter horizon that has enough;
///   before any, the larger of the normal model's quantile and the last week's peak.
/// - Each day's own peak is forecast the same way (its lead's errors), capped at the horizon's.
public struct PeakForecaster: Sendable {
    /// The share of horizons whose peak the plan should hold (0.5 … 0.99).
    public var coverage: Double

    public init(coverage: Double = 0.9) { self.coverage = coverage }

    /// Hours per day.
    public static let day = 24
    /// Days of history before the first day a forecast is scored from (conformal errors).
    static let minimumOrigin = 4
    static let damping = 0.9

    /// φ + φ² + … + φⁿ: how many days of trend a damped forecast `n` days on has added.
    static func damped(steps n: Int) -> Double {
        var sum = 0.0, phi = 1.0
        for _ in 0..<max(n, 0) { phi *= damping; sum += phi }
        return sum
    }
    /// Days of the series' own forecast errors that calibrate a plan (the most recent).
    static let calibrationDays = 21
    static let maxTrendPerDay = 0.03

    /// How the margin above the point forecast was set.
    public enum Margin: String, Sendable {
        /// The series' own rolling-origin errors (split-conformal).
        case conformal
        /// Too few errors of the horizon yet: the errors of the longest shorter horizon with enough.
        case shorterHorizon = "shorter horizon"
        /// Too few own errors yet: the normal model's quantile of the maximum.
        case normal
        /// Fewer than four days of history: the highest daily peak seen.
        case observedPeak = "observed peak"
    }

    /// What the plan's margin is added to.
    public enum Center: String, Sendable {
        /// The median of the horizon's maximum under the point forecast.
        case mean = "median of the horizon's maximum"
        /// The last 7 days' highest peak, moved by the damped trend.
        case weekPeak = "last 7 days' highest peak with the damped trend"
    }

    public struct Result: Sendable, Equatable {
        /// Complete days (24-hour blocks ending at the plan's start) the forecast is fitted on.
        public var historyDays: Int
        /// The peak busy GPUs of each day of the horizon, at `coverage`.
        public var dayPeaks: [Double]
        /// The peak over the whole horizon, at `coverage` (at least every day's).
        public var horizonPeak: Double
        /// The center the plan's margin is added to (see `center`).
        public var medianPeak: Double
        public var margin: Margin
        /// Which of the two calibrated plans was used: the one whose own past errors were tighter.
        public var center: Center
        /// The margin added to the center, as a ratio (1.12 = 12% above it).
        public var marginRatio: Double
        /// How many of this series' own earlier plans for the same horizon held its realized
        /// peak, of how many could be checked.
        public var pastPlansHeld: Int
        public var pastPlans: Int
    }

    /// The daily peaks of an hourly series (oldest first, ending at the plan's start): the highest
    /// hour of each 24-hour block counted back from the end; a partial oldest block is dropped.
    /// Missing hours count as idle.
    public static func dailyPeaks(_ hourly: [Double?]) -> [Double] {
        let days = hourly.count / day
        let skip = hourly.count - days * day
        return (0..<days).map { d in
            hourly[(skip + d * day)..<(skip + (d + 1) * day)].reduce(0.0) { max($0, $1 ?? 0) }
        }
    }

    /// The forecast for the `horizonDays` days after `peaks` (daily peaks, oldest first).
    public func forecast(dailyPeaks peaks: [Double], horizonDays h: Int) -> Result {
        precondition(h >= 1)
        let n = peaks.count
        guard let top = peaks.max(), top > 0 else {
            return Result(historyDays: n, dayPeaks: Array(repeating: 0, count: h), horizonPeak: 0, medianPeak: 0,
                          margin: n < Self.minimumOrigin ? .observedPeak : .conformal, center: .mean, marginRatio: 1, pastPlansHeld: 0, pastPlans: 0)
        }
        // Logs, with an offset that keeps idle days finite.
        let offset = top * 1e-3
        let lp = peaks.map { Foundation.log($0 + offset) }
        func back(_ x: Double) -> Double { max(Foundation.exp(x) - offset, 0) }
        let model = Model(lp)

        // The plan at each earlier origin, for its record of holding.
        var held = 0, checked = 0
        if n >= Self.minimumOrigin + h {
            for o in Self.minimumOrigin...(n - h) {
                checked += 1
                if model.horizonPlan(origin: o, h: h, q: coverage).value >= lp[o..<(o + h)].max()! - 1e-12 { held += 1 }
            }
        }
        let plan = model.horizonPlan(origin: n, h: h, q: coverage)
        let days = (0..<h).map { model.dayPlan(origin: n, lead: $0, q: coverage) }
        let median = plan.centerValue
        return Result(historyDays: n, dayPeaks: days.map { back(min($0, plan.value)) }, horizonPeak: back(plan.value), medianPeak: back(median),
                      margin: plan.margin, center: plan.center, marginRatio: Foundation.exp(plan.value - median), pastPlansHeld: held, pastPlans: checked)
    }

    /// The point forecast fitted on each prefix of the log daily peaks, and the one-day-ahead
    /// residuals they leave.
    struct Model {
        let lp: [Double]
        /// fits[t]: fitted on lp[0..<t] (t ≥ 1).
        let fits: [Fit?]
        /// Prefix sums of squared one-day-ahead residuals: sq[t] = Σ r_s² for 3 ≤ s < t.
        let sq: [Double]

        init(_ lp: [Double]) {
            self.lp = lp
            let n = lp.count
            fits = (0...n).map { $0 == 0 ? nil : Fit(Array(lp[0..<$0])) }
            var sq = [Double](repeating: 0, count: n + 1)
            for t in stride(from: 1, through: n, by: 1) {
                let r = t - 1 >= 3 ? lp[t - 1] - fits[t - 1]!.forecast(0) : 0
                sq[t] = sq[t - 1] + r * r
            }
            self.sq = sq
        }

        /// The residuals' spread for a forecast from lp[0..<o]; nil before there is one.
        func sigma(origin o: Int) -> Double? {
            guard o > 3 else { return nil }
            return (sq[o] / Double(o - 3)).squareRoot()
        }

        func means(origin o: Int, h: Int) -> [Double] { (0..<h).map { fits[o]!.forecast($0) } }
        func spreads(origin o: Int, h: Int) -> [Double] {
            let s = sigma(origin: o) ?? 0
            return (0..<h).map { s * (1 + 0.1 * Double($0)).squareRoot() }
        }

        /// The median of the maximum of the h days after o.
        func center(origin o: Int, h: Int) -> Double {
            return Self.quantileOfMax(means(origin: o, h: h), spreads(origin: o, h: h), 0.5)
        }

        /// The plan for the maximum of the h days after lp[0..<o], at coverage q.
        func horizonPlan(origin o: Int, h: Int, q: Double) -> (value: Double, margin: Margin, center: Center, centerValue: Double) {
            guard o >= PeakForecaster.minimumOrigin else { return (lp[0..<o].max()!, .observedPeak, .weekPeak, lp[0..<o].max()!) }
            // Errors of this horizon; while there are too few, those of the longest shorter one
            // that has enough (a week's plan in a series' first weeks).
            for scored in stride(from: h, through: 1, by: -1) {
                let origins = Array(stride(from: Self.firstScored(o - scored), through: o - scored, by: 1))
                guard Self.rank(origins.count, q) <= origins.count else { continue }
                let realized = origins.map { lp[$0..<($0 + scored)].max()! }
                let meanScores = zip(origins, realized).map { $1 - center(origin: $0, h: scored) }
                let weekScores = zip(origins, realized).map { $1 - weekPeak(origin: $0, h: scored) }
                let margin: Margin = scored == h ? .conformal : .shorterHorizon
                // A horizon of a week or more spans every weekday: the last week's peak is its
                // center. A shorter one knows which days are coming: the center whose own errors
                // are the tighter around it.
                if h < 7 && Self.spread(meanScores, q) <= Self.spread(weekScores, q) {
                    let c = center(origin: o, h: h)
                    return (c + Self.conformal(meanScores, q), margin, .mean, c)
                }
                let c = weekPeak(origin: o, h: h)
                return (c + Self.conformal(weekScores, q), margin, .weekPeak, c)
            }
            let normal = Self.quantileOfMax(means(origin: o, h: h), spreads(origin: o, h: h), q)
            let c = weekPeak(origin: o, h: h)
            return (max(normal, c), .normal, .weekPeak, c)
        }

        /// The rank of the conformal quantile among n errors.
        static func rank(_ n: Int, _ q: Double) -> Int { Int((Double(n + 1) * q - 1e-9).rounded(.up)) }

        /// The highest log peak of the last 7 days, moved by the damped trend to the horizon's middle.
        func weekPeak(origin o: Int, h: Int) -> Double {
            lp[max(0, o - 7)..<o].max()! + fits[o]!.trend * PeakForecaster.damped(steps: 4 + h / 2)
        }

        /// How far the q-quantile of `scores` lies above their median.
        static func spread(_ scores: [Double], _ q: Double) -> Double {
            let s = scores.sorted()
            return s[min(s.count, rank(s.count, q)) - 1] - Fit.median(s)
        }

        /// The plan for day `lead` (0: the first) after lp[0..<o], at coverage q.
        func dayPlan(origin o: Int, lead: Int, q: Double) -> Double {
            guard o >= PeakForecaster.minimumOrigin else { return lp[0..<o].max()! }
            let scores = stride(from: Self.firstScored(o - 1 - lead), through: o - 1 - lead, by: 1).map { o2 in
                lp[o2 + lead] - fits[o2]!.forecast(lead)
            }
            let mean = fits[o]!.forecast(lead), spread = spreads(origin: o, h: lead + 1)[lead]
            guard Self.rank(scores.count, q) <= scores.count else { return mean + spread * Normal.quantile(q) }
            return mean + Self.conformal(scores, q)
        }

        /// The first origin whose errors calibrate a plan whose last scorable origin is `last`:
        /// the last `calibrationDays` of them (demand drifts; older errors say less).
        static func firstScored(_ last: Int) -> Int {
            max(PeakForecaster.minimumOrigin, last - PeakForecaster.calibrationDays + 1)
        }

        /// Split-conformal: the error of rank ⌈(n+1)q⌉ among `scores` (the caller has checked that
        /// there are enough for that rank).
        static func conformal(_ scores: [Double], _ q: Double) -> Double { scores.sorted()[rank(scores.count, q) - 1] }

        /// The q-quantile of the maximum of independent normals (means, spreads): solves
        /// Π Φ((x − μⱼ)/σⱼ) = q by bisection.
        static func quantileOfMax(_ means: [Double], _ spreads: [Double], _ q: Double) -> Double {
            let top = means.max()!
            let widest = spreads.max()!
            guard widest > 0 else { return top }
            func probability(_ x: Double) -> Double {
                zip(means, spreads).reduce(1.0) { p, ms in
                    p * (ms.1 > 0 ? 0.5 * erfc(-(x - ms.0) / (ms.1 * 2.0.squareRoot())) : (x >= ms.0 ? 1 : 0))
                }
            }
            var lo = top - 10 * widest, hi = top + 12 * widest
            for _ in 0..<60 {
                let mid = (lo + hi) / 2
                if probability(mid) < q { lo = mid } else { hi = mid }
            }
            return hi
        }
    }

    /// The point forecast of log daily peaks fitted on one history.
    struct Fit {
        var level: Double
        var trend: Double
        /// Day-of-week effects, by position (t mod 7); zero before two weeks of history.
        var season: [Double]
        var count: Int
        /// How many days before the last the level's mean is centred.
        var lag: Double

        init(_ lp: [Double]) {
            let n = lp.count
            var season = [Double](repeating: 0, count: 7)
            if n >= 14 {
                var deviations = [[Double]](repeating: [], count: 7)
                for t in 3..<(n - 3) {
                    let mean = lp[(t - 3)...(t + 3)].reduce(0, +) / 7
                    deviations[t % 7].append(lp[t] - mean)
                }
                season = deviations.map { Fit.median($0) }
                let mean = season.reduce(0, +) / 7
                season = season.map { $0 - mean }
            }
            let adjusted = (0..<n).map { lp[$0] - season[$0 % 7] }
            let w = min(7, n)
            level = adjusted[(n - w)...].reduce(0, +) / Double(w)
            lag = Double(w - 1) / 2
            if n >= 10 {
                let k = min(7, n / 2)
                let recent = adjusted[(n - k)...].reduce(0, +) / Double(k)
                let before = adjusted[(n - 2 * k)..<(n - k)].reduce(0, +) / Double(k)
                trend = min(max((recent - before) / Double(k), -PeakForecaster.maxTrendPerDay), PeakForecaster.maxTrendPerDay)
            } else {
                trend = 0
            }
            self.season = season
            count = n
        }

        /// The log peak of day `j` after the history (0: the next day).
        func forecast(_ j: Int) -> Double {
            let steps = Int(lag + 1 + Double(j))
            return level + trend * PeakForecaster.damped(steps: steps) + season[(count + j) % 7]
        }

        static func median(_ xs: [Double]) -> Double {
            guard !xs.isEmpty else { return 0 }
            let s = xs.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
    }
}
