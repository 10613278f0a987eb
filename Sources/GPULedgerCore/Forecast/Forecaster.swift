import Foundation

/// Automatic forecasting of a non-negative series (daily spend, hourly busy GPUs) with honest
/// prediction intervals.
///
/// - With fewer than `minimumHistory` observations: a run-rate (the mean of what there is) with a
///   wide band (the spread of the days, at least a quarter of the mean, and the days of a total
///   taken as fully correlated), and `method` says so.
/// - Otherwise the additive ETS models (ANN, AAN, AAdN; with at least two whole seasons also
///   ANA, AAA, AAdA) are fitted and the one with the lowest AICc chosen.
/// - With three seasons and a holdout of history, the chosen model is checked against the
///   seasonal-naive forecast on the series' own last `holdout` steps (refitted without them);
///   when the average of the two forecasts was more accurate there, the forecast is that average
///   (its interval stays the model's).
///
/// The series is a plain `[Double?]` (nil: missing, not zero). Money is turned into a series of
/// plain numbers here and the answer rounded back to cents by the caller: a forecast is an
/// estimate, never an amount in the ledger.
public struct Forecaster: Sendable {
    public var period: Int
    public var minimumHistory: Int
    public var holdout: Int
    /// Only the seasonal models once there are two seasons (the capacity planner's hourly
    /// series: its daily cycle is the point).
    public var seasonalOnly: Bool
    /// Whether the family is also fitted on the logarithm (false: the additive family only).
    public var logModels: Bool

    public init(period: Int, minimumHistory: Int? = nil, holdout: Int? = nil, seasonalOnly: Bool = false, logModels: Bool = true) {
        self.period = period
        self.minimumHistory = minimumHistory ?? period
        self.holdout = holdout ?? 4 * period
        self.seasonalOnly = seasonalOnly
        self.logModels = logModels
    }

    /// Daily series with a weekly season.
    public static let daily = Forecaster(period: 7, minimumHistory: 7, holdout: 28)
    /// Hourly series with a daily season.
    public static let hourly = Forecaster(period: 24, minimumHistory: 24, holdout: 72, seasonalOnly: true)

    public struct Forecast: Sendable {
        /// One sentence: the model and why.
        public var method: String
        public var mean: [Double]
        public var model: ETSModel?
        /// Run-rate only: the per-step standard deviation.
        var runRateSD: Double = 0
        public var combined: Bool = false
        /// A model of the logarithm of the series (multiplicative): `mean` is then the median
        /// path, exp of the model's mean, and sums' quantiles come from simulated paths.
        public var logScale: Bool = false

        /// Each step's standard deviation.
        public var stepSDs: [Double] {
            model.map { $0.stepVariances(mean.count).map { $0.squareRoot() } } ?? Array(repeating: runRateSD, count: mean.count)
        }

        /// The central `level` interval of each step, clamped at zero.
        public func intervals(level: Double) -> [(lower: Double, upper: Double)] {
            zip(quantiles(0.5 - level / 2), quantiles(0.5 + level / 2)).map { ($0, $1) }
        }

        /// The `p` quantile of each step, clamped at zero.
        public func quantiles(_ p: Double) -> [Double] {
            let z = Normal.quantile(p)
            if logScale { return zip(mean, stepSDs).map { $0 * exp(z * $1) } }
            return zip(mean, stepSDs).map { max($0 + z * $1, 0) }
        }

        /// Σ w_k y_k over `paths` simulated paths of a log-scale model, sorted (seeded: the same
        /// forecast gives the same answer).
        func simulatedSums(_ w: [Double], paths: Int = 2000) -> [Double] {
            guard let model else { return [] }
            var rng = SplitMix64(state: 0x5EED)
            let sigma = model.sigma2.squareRoot()
            let m = model.spec.seasonal ? model.spec.period : 1
            var sums: [Double] = []
            sums.reserveCapacity(paths)
            for _ in 0..<paths {
                var l = model.level, b = model.slope, season = model.season
                var si = model.nextIndex % m
                var total = 0.0
                for k in 0..<w.count {
                    let pred = l + model.phi * b + (model.spec.seasonal ? season[si] : 0)
                    let e = sigma * rng.gaussian()
                    total += w[k] * exp(pred + e)
                    l = l + model.phi * b + model.alpha * e
                    b = model.phi * b + model.beta * e
                    if model.spec.seasonal { season[si] += model.gamma * e }
                    si = (si + 1) % m
                }
                sums.append(total)
            }
            return sums.sorted()
        }

        static func quantile(sorted xs: [Double], _ p: Double) -> Double {
            guard !xs.isEmpty else { return 0 }
            return xs[min(xs.count - 1, max(0, Int((p * Double(xs.count)).rounded(.up)) - 1))]
        }

        /// The mean and the central `level` interval of Σ w_k y_k (step k = 1…weights.count),
        /// clamped at zero.
        public func weightedSum(_ weights: [Double], level: Double) -> (mean: Double, lower: Double, upper: Double) {
            let h = min(weights.count, mean.count)
            let w = Array(weights.prefix(h))
            if logScale {
                let sums = simulatedSums(w)
                return (Self.quantile(sorted: sums, 0.5), Self.quantile(sorted: sums, 0.5 - level / 2), Self.quantile(sorted: sums, 0.5 + level / 2))
            }
            let m = zip(w, mean).reduce(0) { $0 + $1.0 * $1.1 }
            let sd: Double
            if let model { sd = model.weightedSumVariance(w).squareRoot() } else { sd = w.reduce(0, +) * runRateSD }
            let z = Normal.quantile(0.5 + level / 2)
            return (max(m, 0), max(m - z * sd, 0), max(m + z * sd, 0))
        }

        /// The `ps` quantiles of Σ w_k y_k (one simulation for all of them on the log scale).
        public func weightedSumQuantiles(_ weights: [Double], _ ps: [Double]) -> [Double] {
            guard logScale else { return ps.map { weightedSumQuantile(weights, p: $0) } }
            let sums = simulatedSums(Array(weights.prefix(min(weights.count, mean.count))))
            return ps.map { Self.quantile(sorted: sums, $0) }
        }

        /// The `p` quantile of Σ w_k y_k, clamped at zero.
        public func weightedSumQuantile(_ weights: [Double], p: Double) -> Double {
            let h = min(weights.count, mean.count)
            let w = Array(weights.prefix(h))
            if logScale { return Self.quantile(sorted: simulatedSums(w), p) }
            let m = zip(w, mean).reduce(0) { $0 + $1.0 * $1.1 }
            let sd = model.map { $0.weightedSumVariance(w).squareRoot() } ?? w.reduce(0, +) * runRateSD
            return max(m + Normal.quantile(p) * sd, 0)
        }
    }

    /// Forecasts `h` steps after the end of `y`, `unit` naming the steps in `method` ("days").
    /// Nil when `y` holds no observation at all.
    /// `concurrent`: the dozen fits on every core (off when the caller already runs forecasts
    /// side by side).
    public func forecast(_ y: [Double?], horizon h: Int, unit: String = "days", concurrent: Bool = true) -> Forecast? {
        let present = y.compactMap { $0 }
        guard !present.isEmpty, h > 0 else { return nil }
        if present.count < minimumHistory {
            let recent = Array(present.suffix(period))
            let mean = recent.reduce(0, +) / Double(recent.count)
            var sd = 0.0
            if recent.count > 1 {
                sd = (recent.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(recent.count - 1)).squareRoot()
            }
            sd = max(sd, 0.25 * abs(mean)) * (1 + 1 / Double(recent.count)).squareRoot()
            return Forecast(method: "run-rate: the mean of the \(recent.count) \(unit) of history (under \(minimumHistory), too few for a model), with a wide band",
                            mean: Array(repeating: mean, count: h), model: nil, runRateSD: sd)
        }
        // The family on the series and, when every value is positive, on its logarithm (the
        // multiplicative models: growth and a season that scale with the level); the two are
        // compared by AICc with the Jacobian of the log, 2 Σ log y.
        let logs = logModels && present.allSatisfy({ $0 > 0 })
        let specs = Self.candidates(y.count, period: period, seasonalOnly: seasonalOnly)
        let jobs = specs.map { (false, $0) } + (logs ? specs.map { (true, $0) } : [])
        let logY = logs ? y.map { $0.map(Foundation.log) } : []
        let fit = { (i: Int) in ETSModel.fit(jobs[i].0 ? logY : y, spec: jobs[i].1) }
        let fitted = concurrent ? Self.fitConcurrently(jobs.count, fit) : jobs.indices.map(fit)
        var raw: ETSModel?, bestLog: ETSModel?
        for (job, model) in zip(jobs, fitted) {
            guard let model else { continue }
            if job.0 {
                if bestLog.map({ model.aicc < $0.aicc }) ?? true { bestLog = model }
            } else if raw.map({ model.aicc < $0.aicc }) ?? true {
                raw = model
            }
        }
        var jacobian = 0.0
        for v in present where logs { jacobian += 2 * Foundation.log(v) }
        let rawAICc = raw?.aicc ?? Double.infinity
        if let logModel = bestLog, logModel.aicc + jacobian < rawAICc {
            var method = "\(logModel.spec) on the logarithm of the series (multiplicative), chosen by AICc from the additive ETS family on the series and on its log"
            method += logModel.spec.seasonal ? " with a season of \(period) \(unit)" : ""
            method += ", fitted on \(present.count) \(unit)"
            return Forecast(method: method, mean: logModel.forecast(h).map(Foundation.exp), model: logModel, logScale: true)
        }
        guard let model = raw else {
            return Forecast(method: "run-rate: no model could be fitted", mean: Array(repeating: present.last!, count: h), model: nil,
                            runRateSD: 0.25 * abs(present.last!))
        }
        var method = "\(model.spec) chosen by AICc from the additive ETS family"
        method += model.spec.seasonal ? " with a season of \(period) \(unit)" : (y.count < 2 * period ? " (non-seasonal: under \(2 * period) \(unit) of history)" : "")
        method += ", fitted on \(present.count) \(unit)"
        var mean = model.forecast(h)
        var combined = false
        if y.count >= 3 * period + holdout {
            let naive = Self.seasonalNaive(y, period: period, horizon: h)
            switch holdoutChoice(y, spec: model.spec) {
            case .model: break
            case .average:
                mean = zip(mean, naive).map { ($0 + ($1 ?? $0)) / 2 }
                combined = true
                method += "; averaged with the seasonal-naive forecast, which was more accurate on the last \(holdout) \(unit)"
            }
        }
        return Forecast(method: method, mean: mean, model: model, combined: combined)
    }

    /// The lowest-AICc model of the family (seasonal ones only with two whole seasons).
    public static func select(_ y: [Double?], period: Int, seasonalOnly: Bool = false) -> ETSModel? {
        candidates(y.count, period: period, seasonalOnly: seasonalOnly).compactMap { ETSModel.fit(y, spec: $0) }.min { $0.aicc < $1.aicc }
    }

    /// The family's models for a series of `count` steps (seasonal ones only with two seasons).
    static func candidates(_ count: Int, period: Int, seasonalOnly: Bool) -> [ETSModel.Spec] {
        var candidates: [ETSModel.Spec] = []
        if !seasonalOnly || count < 2 * period { candidates = ETSModel.Trend.allCases.map { .init(trend: $0, seasonal: false, period: period) } }
        if count >= 2 * period { candidates += ETSModel.Trend.allCases.map { .init(trend: $0, seasonal: true, period: period) } }
        return candidates
    }

    /// `fit(i)` for i in 0..<n on every core (one forecast's dozen fits are independent).
    static func fitConcurrently(_ n: Int, _ fit: (Int) -> ETSModel?) -> [ETSModel?] {
        var out = [ETSModel?](repeating: nil, count: n)
        out.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let slots = buffer
            withoutActuallyEscaping(fit) { fit in
                nonisolated(unsafe) let fit = fit
                DispatchQueue.concurrentPerform(iterations: n) { i in slots[i] = fit(i) }
            }
        }
        return out
    }

    enum Choice { case model, average }

    /// Whether the model's forecast or its average with the seasonal-naive one had the least
    /// absolute error on the last `holdout` steps, the model refitted without them (ties: the
    /// model). (Taking the seasonal-naive forecast alone when it did best there made the
    /// backtest worse.)
    func holdoutChoice(_ y: [Double?], spec: ETSModel.Spec) -> Choice {
        let train = Array(y.dropLast(holdout))
        let test = Array(y.suffix(holdout))
        guard let model = ETSModel.fit(train, spec: spec) else { return .model }
        let ets = model.forecast(holdout)
        let naive = Self.seasonalNaive(train, period: period, horizon: holdout)
        var errETS = 0.0, errAvg = 0.0
        for i in 0..<holdout {
            guard let actual = test[i] else { continue }
            let n = naive[i] ?? ets[i]
            errETS += abs(actual - ets[i])
            errAvg += abs(actual - (ets[i] + n) / 2)
        }
        return errAvg < errETS ? .average : .model
    }

    /// The value one season back (the latest season that has it).
    public static func seasonalNaive(_ y: [Double?], period m: Int, horizon h: Int) -> [Double?] {
        (1...h).map { k in
            var t = y.count + k - 1 - m
            while t >= y.count { t -= m }
            while t >= 0 { if let v = y[t] { return v }; t -= m }
            return nil
        }
    }
}

/// The standard normal distribution's quantile function (Acklam's rational approximation,
/// relative error below 1.2e-9).
public enum Normal {
    public static func quantile(_ p: Double) -> Double {
        precondition(p > 0 && p < 1, "p must be in (0, 1)")
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        if p < low {
            let q = (-2 * log(p)).squareRoot()
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        if p > 1 - low { return -quantile(1 - p) }
        let q = p - 0.5, r = q * q
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    }
}

/// A small seeded generator (SplitMix64) with normal draws, for simulated forecast paths.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func gaussian() -> Double {
        let u = Double(next() >> 11) * 0x1p-53, v = Double(next() >> 11) * 0x1p-53
        return (-2 * Foundation.log(max(u, 1e-300))).squareRoot() * cos(2 * .pi * v)
    }
}
