import Foundation

/// The additive exponential-smoothing family (Hyndman et al., "Forecasting with Exponential
/// Smoothing", class 1: additive errors), with no trend, an additive trend or a damped trend,
/// each with or without an additive season of `period` steps:
///
///     ŷ_t = l_{t−1} + φ b_{t−1} + s_{t−m}        e_t = y_t − ŷ_t
///     l_t = l_{t−1} + φ b_{t−1} + α e_t          b_t = φ b_{t−1} + β e_t       s_t = s_{t−m} + γ e_t
///
/// A missing observation (`nil`) has no error: the states move on by their prediction.
public struct ETSModel: Sendable, Equatable {
    public enum Trend: String, Sendable, CaseIterable { case none = "N", additive = "A", damped = "Ad" }

    public struct Spec: Sendable, Hashable, CustomStringConvertible {
        public var trend: Trend
        public var seasonal: Bool
        public var period: Int
        public init(trend: Trend, seasonal: Bool, period: Int) {
            self.trend = trend; self.seasonal = seasonal; self.period = period
        }
        /// `ETS(A,Ad,A)` and the like.
        public var description: String { "ETS(A,\(trend.rawValue),\(seasonal ? "A" : "N"))" }
        /// Smoothing parameters plus initial states (the season's m states sum to zero: m − 1).
        var parameterCount: Int {
            1 + (trend == .none ? 0 : 1) + (trend == .damped ? 1 : 0) + (seasonal ? 1 : 0)
                + 1 + (trend == .none ? 0 : 1) + (seasonal ? period - 1 : 0)
        }
    }

    public var spec: Spec
    public var alpha: Double
    public var beta: Double
    public var gamma: Double
    public var phi: Double
    /// States after the last observation: level, trend, and the season (index t mod m).
    public var level: Double
    public var slope: Double
    public var season: [Double]
    /// Observations the model was fitted to (those present).
    public var observations: Int
    /// Time index of the next step (the series' length).
    public var nextIndex: Int
    public var sse: Double
    /// The variance of the one-step errors that intervals use: with a long history, the mean
    /// square of the last max(8 seasons, 56) errors (spend grows, and its noise with it: the
    /// whole history's variance made 80% intervals cover two thirds of the time in the
    /// backtest); otherwise SSE / (n − k).
    public var sigma2: Double
    public var aicc: Double

    /// The mean forecast 1…h steps ahead.
    public func forecast(_ h: Int) -> [Double] {
        var out: [Double] = []
        out.reserveCapacity(h)
        var phiSum = 0.0, phiPower = 1.0
        for k in 1...max(h, 1) where k <= h {
            switch spec.trend {
            case .none: break
            case .additive: phiSum = Double(k)
            case .damped: phiPower *= phi; phiSum += phiPower
            }
            let s = spec.seasonal ? season[(nextIndex + k - 1) % spec.period] : 0
            out.append(level + phiSum * slope + s)
        }
        return out
    }

    /// The coefficients ψ_0 = 1, ψ_j = c_j = α + β φ_j + γ [j ≡ 0 mod m] of the forecast errors:
    /// y_{T+k} − ŷ_{T+k} = Σ_{i=1..k} ψ_{k−i} ε_{T+i}.
    public func psi(_ h: Int) -> [Double] {
        var out = [1.0]
        var phiSum = 0.0, phiPower = 1.0
        for j in 1..<max(h, 1) {
            switch spec.trend {
            case .none: break
            case .additive: phiSum = Double(j)
            case .damped: phiPower *= phi; phiSum += phiPower
            }
            out.append(alpha + beta * phiSum + (spec.seasonal && j % spec.period == 0 ? gamma : 0))
        }
        return out
    }

    /// Variance of each forecast step: σ²(1 + Σ_{j<k} c_j²).
    public func stepVariances(_ h: Int) -> [Double] {
        let psi = psi(h)
        var acc = 0.0
        return psi.map { c in acc += c * c; return sigma2 * acc }
    }

    /// Variance of Σ_k w_k y_{T+k} (k = 1…w.count): σ² Σ_i (Σ_{k≥i} w_k ψ_{k−i})². With every
    /// weight 1 this is σ² Σ_{k=1..h} (1 + C_{h−k})², C_r the cumulative coefficients; the days
    /// are correlated through the states, so it is not the sum of the daily variances.
    public func weightedSumVariance(_ weights: [Double]) -> Double {
        let h = weights.count
        guard h > 0 else { return 0 }
        let psi = psi(h)
        var total = 0.0
        for i in 0..<h {
            var coefficient = 0.0
            for k in i..<h { coefficient += weights[k] * psi[k - i] }
            total += coefficient * coefficient
        }
        return sigma2 * total
    }
}

extension ETSModel {
    /// Fits `spec` to `y` by minimizing the sum of squared one-step errors (Nelder–Mead over the
    /// smoothing parameters, the initial level and the initial trend, inside the usual bounds:
    /// 0 < α < 1, 0 < β < α, 0 < γ < 1 − α, 0.8 ≤ φ ≤ 0.98; the initial season from the first
    /// seasons' means). Nil when the series is too short for the model's parameters.
    public static func fit(_ y: [Double?], spec: Spec) -> ETSModel? {
        let present = y.compactMap { $0 }
        let n = present.count
        let k = spec.parameterCount + 1
        guard n >= 2, n - k - 1 > 0, !spec.seasonal || y.count >= 2 * spec.period else { return nil }
        let m = spec.seasonal ? spec.period : 1
        let seasonInit = spec.seasonal ? initialSeason(y, period: m) : [0]
        // Initial level and slope: a least-squares line through the first (deseasonalized) points.
        var xs: [Double] = [], ys: [Double] = []
        for (t, v) in y.enumerated() where xs.count < max(10, spec.seasonal ? 2 * m : 10) {
            if let v { xs.append(Double(t)); ys.append(v - seasonInit[t % m]) }
        }
        let (intercept, slope0) = line(xs, ys)
        let scale = max(present.map(abs).reduce(0, +) / Double(n), 1e-9)
        let hasTrend = spec.trend != .none
        let damped = spec.trend == .damped
        func sigmoid(_ u: Double) -> Double { 1 / (1 + exp(-u)) }
        func logit(_ p: Double) -> Double { log(p / (1 - p)) }
        struct P { var alpha, beta, gamma, phi, l0, b0: Double }
        func params(_ x: [Double]) -> P {
            var i = 0
            func next() -> Double { defer { i += 1 }; return x[i] }
            let alpha = 1e-4 + (1 - 2e-4) * sigmoid(next())
            let beta = hasTrend ? alpha * sigmoid(next()) : 0
            let gamma = spec.seasonal ? (1 - alpha) * sigmoid(next()) : 0
            let phi = damped ? 0.8 + 0.18 * sigmoid(next()) : 1
            let l0 = intercept - slope0 + next() * scale
            let b0 = hasTrend ? slope0 + next() * scale * 0.1 : 0
            return P(alpha: alpha, beta: beta, gamma: gamma, phi: phi, l0: l0, b0: b0)
        }
        var start = [logit(spec.seasonal ? 0.2 : 0.3)]
        var step = [1.0]
        if hasTrend { start.append(logit(0.1)); step.append(1) }
        if spec.seasonal { start.append(logit(0.1)); step.append(1) }
        if damped { start.append(logit(0.5)); step.append(1) }
        start.append(0); step.append(0.1)
        if hasTrend { start.append(0); step.append(0.1) }

        var errors: [Double] = []
        // The observations as plain values and a mask (the loop below runs thousands of times a fit).
        let values = y.map { $0 ?? 0 }
        let observed = y.map { $0 != nil }
        func run(_ p: P, finish: ((Double, Double, [Double]) -> Void)? = nil) -> Double {
            var l = p.l0, b = p.b0
            var s = seasonInit
            var sse = 0.0
            let seasonal = spec.seasonal
            s.withUnsafeMutableBufferPointer { season in
                values.withUnsafeBufferPointer { v in
                    observed.withUnsafeBufferPointer { o in
                        var si = 0
                        for t in 0..<v.count {
                            let pred = l + p.phi * b + (seasonal ? season[si] : 0)
                            let e = o[t] ? v[t] - pred : 0
                            sse += e * e
                            if finish != nil, o[t] { errors.append(e) }
                            l = l + p.phi * b + p.alpha * e
                            b = p.phi * b + p.beta * e
                            if seasonal { season[si] += p.gamma * e }
                            si += 1
                            if si == m { si = 0 }
                        }
                    }
                }
            }
            finish?(l, b, s)
            return sse
        }
        let best = NelderMead.minimize({ run(params($0)) }, start: start, step: step, tolerance: 1e-7,
                                       maxEvaluations: 150 * start.count)
        let p = params(best.x)
        var model = ETSModel(spec: spec, alpha: p.alpha, beta: p.beta, gamma: p.gamma, phi: p.phi, level: 0, slope: 0, season: [],
                             observations: n, nextIndex: y.count, sse: 0, sigma2: 0, aicc: .infinity)
        let sse = run(p) { l, b, s in model.level = l; model.slope = b; model.season = s }
        model.sse = sse
        let window = max(8 * spec.period, 56)
        if errors.count >= 2 * window {
            model.sigma2 = errors.suffix(window).reduce(0) { $0 + $1 * $1 } / Double(window)
        } else {
            model.sigma2 = sse / Double(max(n - k, 1))
        }
        let dn = Double(n), dk = Double(k)
        let aic = dn * log(max(sse, 1e-300) / dn) + 2 * dk
        model.aicc = aic + 2 * dk * (dk + 1) / (dn - dk - 1)
        return model
    }

    /// The initial season: per position in the season, the mean deviation from its season's mean
    /// over the first (up to four) whole seasons, centred to sum to zero.
    static func initialSeason(_ y: [Double?], period m: Int) -> [Double] {
        let seasons = min(y.count / m, 4)
        var sums = [Double](repeating: 0, count: m), counts = [Double](repeating: 0, count: m)
        for j in 0..<seasons {
            let chunk = y[(j * m)..<((j + 1) * m)].compactMap { $0 }
            guard !chunk.isEmpty else { continue }
            let mean = chunk.reduce(0, +) / Double(chunk.count)
            for i in 0..<m { if let v = y[j * m + i] { sums[i] += v - mean; counts[i] += 1 } }
        }
        var s = (0..<m).map { counts[$0] > 0 ? sums[$0] / counts[$0] : 0 }
        let centre = s.reduce(0, +) / Double(m)
        for i in 0..<m { s[i] -= centre }
        return s
    }

    static func line(_ x: [Double], _ y: [Double]) -> (Double, Double) {
        guard let first = y.first else { return (0, 0) }
        guard x.count >= 2 else { return (first, 0) }
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0
        for i in x.indices { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx) }
        let slope = sxx > 0 ? sxy / sxx : 0
        return (my - slope * mx, slope)
    }
}
