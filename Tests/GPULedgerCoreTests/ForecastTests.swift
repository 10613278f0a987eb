import Foundation
@testable import GPULedgerCore
import Testing

@Suite struct ForecastTests {
    func close(_ a: [Double], _ b: [Double], _ tolerance: Double = 1e-6) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
    }

    @Test func nelderMeadFindsTheRosenbrockMinimum() {
        let r = NelderMead.minimize({ x in 100 * pow(x[1] - x[0] * x[0], 2) + pow(1 - x[0], 2) }, start: [-1.2, 1], step: [0.5, 0.5],
                                    tolerance: 1e-14, maxEvaluations: 5_000)
        #expect(abs(r.x[0] - 1) < 1e-4 && abs(r.x[1] - 1) < 1e-4)
    }

    @Test func aConstantSeriesForecastsItselfWithNoSpread() throws {
        let y: [Double?] = Array(repeating: 100, count: 60)
        let f = try #require(Forecaster.daily.forecast(y, horizon: 10))
        #expect(close(f.mean, Array(repeating: 100, count: 10)))
        // With nothing to explain, the simplest model wins on AICc.
        #expect(f.model?.spec.description == "ETS(A,N,N)")
        let total = f.weightedSum(Array(repeating: 1, count: 10), level: 0.8)
        #expect(abs(total.mean - 1000) < 1e-6 && total.upper - total.lower < 1e-3)
    }

    @Test func aPureTrendIsExtended() throws {
        // y_t = 10 + 2t for t = 0…39: the next days are 90, 92, 94, …
        let y: [Double?] = (0..<40).map { 10 + 2 * Double($0) }
        let f = try #require(Forecaster.daily.forecast(y, horizon: 5))
        #expect(close(f.mean, [90, 92, 94, 96, 98], 1e-5))
        #expect(f.model?.spec.trend == .additive)
    }

    @Test func aPureWeeklyPatternRepeats() throws {
        let week: [Double] = [120, 130, 125, 128, 110, 60, 55]
        let y: [Double?] = (0..<56).map { week[$0 % 7] }
        let f = try #require(Forecaster.daily.forecast(y, horizon: 14))
        #expect(close(f.mean, week + week, 1e-5))
        #expect(f.model?.spec.seasonal == true)
        #expect(f.method.contains("season of 7 days"))
    }

    @Test func intervalsFollowTheETSCoefficients() {
        // ETS(A,N,N) with α = 0.5, σ² = 1: c_j = 0.5, so the steps' variances are 1, 1.25, 1.5,
        // and the 3-day total's is (1 + C_2)² + (1 + C_1)² + 1² = 4 + 2.25 + 1 = 7.25 (days are
        // correlated), not 1 + 1.25 + 1.5 = 3.75.
        let m = ETSModel(spec: .init(trend: .none, seasonal: false, period: 7), alpha: 0.5, beta: 0, gamma: 0, phi: 1, level: 10, slope: 0,
                         season: [0], observations: 30, nextIndex: 30, sse: 28, sigma2: 1, aicc: 0)
        #expect(close(m.stepVariances(3), [1, 1.25, 1.5]))
        #expect(abs(m.weightedSumVariance([1, 1, 1]) - 7.25) < 1e-12)
        // Half of the first day: (0.5 + 0.5 + 0.5)² + (1 + 0.5)² + 1 = 2.25 + 2.25 + 1.
        #expect(abs(m.weightedSumVariance([0.5, 1, 1]) - 5.5) < 1e-12)
        // AAdA: c_j = α + β(φ + … + φ^j) + γ[j ≡ 0 mod m].
        let d = ETSModel(spec: .init(trend: .damped, seasonal: true, period: 2), alpha: 0.3, beta: 0.1, gamma: 0.2, phi: 0.9, level: 0, slope: 0,
                         season: [0, 0], observations: 30, nextIndex: 30, sse: 0, sigma2: 1, aicc: 0)
        #expect(close(d.psi(4), [1, 0.3 + 0.1 * 0.9, 0.3 + 0.1 * (0.9 + 0.81) + 0.2, 0.3 + 0.1 * (0.9 + 0.81 + 0.729)], 1e-12))
    }

    @Test func shortHistoriesUseARunRateOrNonSeasonalModels() throws {
        let few = try #require(Forecaster.daily.forecast([10, 12, 11], horizon: 7))
        #expect(few.model == nil && few.method.hasPrefix("run-rate"))
        #expect(close(few.mean, Array(repeating: 11, count: 7)))
        let band = few.intervals(level: 0.8)[0]
        #expect(band.lower < 9 && band.upper > 13)
        let tenDays: [Double?] = [100, 104, 98, 101, 99, 103, 97, 102, 100, 101]
        let f = try #require(Forecaster.daily.forecast(tenDays, horizon: 7))
        #expect(f.model?.spec.seasonal == false)
        #expect(f.method.contains("non-seasonal"))
    }

    @Test func missingDaysAreNotZeroSpend() throws {
        // A flat 100 a day with a week missing: a model fitted on zeros there would sag.
        var y: [Double?] = Array(repeating: 100, count: 42)
        for i in 20..<27 { y[i] = nil }
        let f = try #require(Forecaster.daily.forecast(y, horizon: 7))
        #expect(close(f.mean, Array(repeating: 100, count: 7), 1e-6))
    }

    @Test func seasonalNaiveRepeatsTheLastSeason() {
        let y: [Double?] = [1, 2, 3, nil, 5, 6, 7, 8, 9, 10]
        // Period 3: the next steps repeat 8, 9, 10.
        #expect(Forecaster.seasonalNaive(y, period: 3, horizon: 4).map { $0! } == [8, 9, 10, 8])
    }

    @Test func normalQuantiles() {
        #expect(abs(Normal.quantile(0.9) - 1.2815515655) < 1e-8)
        #expect(abs(Normal.quantile(0.5)) < 1e-12)
        #expect(abs(Normal.quantile(0.01) + 2.3263478740) < 1e-8)
    }
}

@Suite struct BudgetTests {
    func t(_ s: String) -> Timestamp { Timestamp.parseDateOrTime(s)! }
    func d(_ s: String) -> Decimal { CentRounding.decimal(s)! }

    @Test func periodsAreCalendarPeriodsInUTC() {
        #expect(Budget.window(.monthly, at: t("2026-11-30T23:59:59.999999Z")) == (t("2026-11-01"), t("2026-12-01")))
        #expect(Budget.window(.monthly, at: t("2026-12-01T00:00:00Z")) == (t("2026-12-01"), t("2027-01-01")))
        #expect(Budget.window(.monthly, at: t("2028-02-29T12:00:00Z")) == (t("2028-02-01"), t("2028-03-01")))
        #expect(Budget.window(.quarterly, at: t("2026-08-15")) == (t("2026-07-01"), t("2026-10-01")))
        #expect(Budget.window(.quarterly, at: t("2026-12-31T23:59:59Z")) == (t("2026-10-01"), t("2027-01-01")))
        #expect(Budget.window(.quarterly, at: t("2027-01-01")) == (t("2027-01-01"), t("2027-04-01")))
        #expect(Budget.window(.yearly, at: t("2028-02-29")) == (t("2028-01-01"), t("2029-01-01")))
    }

    @Test func statesFollowTheContractOrder() {
        let b = Budget(name: "b", tenant: nil, period: .monthly, amount: 100, thresholds: Budget.defaultThresholds, basis: .usage)
        #expect(BudgetStatus.state(budget: b, spent: 10, forecastP50: 90) == (.ok, []))
        #expect(BudgetStatus.state(budget: b, spent: 50, forecastP50: 90) == (.warning, [d("0.5")]))
        #expect(BudgetStatus.state(budget: b, spent: 10, forecastP50: d("100.01")) == (.at_risk, []))
        #expect(BudgetStatus.state(budget: b, spent: 80, forecastP50: 120) == (.at_risk, [d("0.5"), d("0.8")]))
        #expect(BudgetStatus.state(budget: b, spent: 100, forecastP50: 100) == (.exceeded, [d("0.5"), d("0.8"), 1]))
    }

    @Test func exhaustionIsTheDayThePathReachesTheAmount() throws {
        let b = Budget(name: "b", tenant: nil, period: .monthly, amount: 100, thresholds: [], basis: .usage)
        let f = try #require(Forecaster.daily.forecast(Array(repeating: 10, count: 30), horizon: 5))
        // Spent 75; half of today (5) then 10 a day: 80, 90, 100 → the third day.
        let p = BudgetProjection.project(budget: b, spent: 75, spentByDay: [], forecast: f,
                                         days: ["2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"], weights: [0.5, 1, 1, 1, 1])
        #expect(p.exhaustion == "2026-11-28")
        #expect(p.p50 == 120)
        // Already over: the day the ledger crossed it.
        let over = BudgetProjection.project(budget: b, spent: 105, spentByDay: [("2026-11-01", 60), ("2026-11-02", 45)], forecast: f,
                                            days: ["2026-11-03"], weights: [1])
        #expect(over.exhaustion == "2026-11-02")
    }
}

@Suite struct CapacityPlannerTests {
    func plan(_ busy: [Double?], days: Int, target: Double = 0.7) -> CapacityPlan {
        CapacityPlanner.plan(busyGPUs: busy, horizonHours: days * 24, targetUtilization: target, usdPerGPUHour: nil, budgetUSD: nil, currentGPUs: 0)
    }

    /// Busy GPUs following 8 + 6 sin(2π h / 24) for `days` days (peak 14).
    func curve(days: Int) -> [Double?] { (0..<(days * 24)).map { 8 + 6 * sin(2 * .pi * Double($0 % 24) / 24) } }

    @Test func aConstantSeriesPlansExactlyItsLevelOverTheTarget() {
        for (c, target) in [(10.0, 0.7), (3.5, 0.8), (16.6, 0.7), (0.2, 0.6)] {
            let p = plan(Array(repeating: c, count: 21 * 24), days: 2, target: target)
            #expect(p.requiredGPUs == Int((c / target - 1e-9).rounded(.up)), "\(c) at \(target)")
            #expect(abs(p.forecastPeakBusyGPUs - c) < 1e-9)
            #expect(p.days.count == 2 && p.days.allSatisfy { $0.requiredGPUs == p.requiredGPUs })
        }
    }

    @Test func aKnownDailyCurveNeedsItsPeakOverTheTarget() {
        // The peak is 14 busy GPUs, and at 70% utilization that needs 14 / 0.7 = 20 GPUs.
        let p = CapacityPlanner.plan(busyGPUs: curve(days: 28), horizonHours: 7 * 24, targetUtilization: 0.7, usdPerGPUHour: CentRounding.decimal("2.5"),
                                     budgetUSD: 6_000, currentGPUs: 16)
        #expect(abs(p.forecastPeakBusyGPUs - 14) < 1e-6)
        #expect(p.requiredGPUs == 20)
        #expect(p.days.map(\.requiredGPUs) == Array(repeating: 20, count: 7))
        #expect(p.pastPlans > 0 && p.pastPlansHeld == p.pastPlans)
        // 20 GPUs × 168 hours × $2.50; $6,000 pays for ⌊6000 / 420⌋ = 14.
        #expect(p.planCostUSD == 8_400)
        #expect(p.affordableGPUs == 14 && p.fitsBudget == false)
    }

    @Test func anOutageHourIsNotPlannedFrom() {
        let clean = plan(curve(days: 21), days: 2)
        for hour in [3 * 24 + 2, 20 * 24 + 6, 20 * 24 + 23] { // a night hour, the last day's peak hour, the very last hour
            var busy = curve(days: 21)
            busy[hour] = 0
            let p = plan(busy, days: 2)
            #expect(p.requiredGPUs == clean.requiredGPUs, "outage at hour \(hour)")
            #expect(p.forecastPeakBusyGPUs <= clean.forecastPeakBusyGPUs * 1.05)
        }
        #expect(clean.requiredGPUs == 20)
    }

    @Test func aLongerHorizonOnAFlatSeriesPlansNoMore() {
        for series in [curve(days: 28), Array(repeating: 12.0, count: 28 * 24)] {
            #expect(plan(series, days: 7).requiredGPUs <= plan(series, days: 1).requiredGPUs)
        }
    }

    @Test func growthRaisesTheLaterDaysAndTheHorizonCoversTheMax() {
        // 2% more a day for four weeks, with a daily curve.
        let busy: [Double?] = (0..<(28 * 24)).map { (h: Int) -> Double? in
            let shape: Double = 8 + 6 * sin(2 * Double.pi * Double(h % 24) / 24)
            return shape * pow(1.02, Double(h / 24))
        }
        let p = plan(busy, days: 7)
        #expect(p.days.map(\.forecastPeakBusyGPUs) == p.days.map(\.forecastPeakBusyGPUs).sorted())
        #expect(p.days.last!.forecastPeakBusyGPUs > p.days.first!.forecastPeakBusyGPUs)
        #expect(p.requiredGPUs >= p.days.map(\.requiredGPUs).max()!)
        // Damped and capped: far below an undamped 2%-a-day extrapolation of the peak over 90 days.
        let long = plan(busy, days: 90)
        let undamped: Double = 14 * pow(1.02, 27 + 90)
        #expect(long.forecastPeakBusyGPUs < undamped / 3)
    }

    @Test func lessThanADayOrNoUsage() {
        #expect(plan([], days: 3).requiredGPUs == 0)
        #expect(plan(Array(repeating: 0, count: 48), days: 3).requiredGPUs == 0)
        let short = plan([2, 5, 3], days: 1)
        #expect(short.requiredGPUs == CapacityPlanner.gpus(forBusy: 5, target: 0.7))
    }

    @Test func theCheapestMeasuredTypeComesFirstAndAnUnmeasuredOneIsNotGuessed() {
        // 10 busy H100s at the peak, all of model m (1,000 output tokens/GPU-s there); m makes
        // 500 tokens/GPU-s on A100s and was never run on L4s.
        let options = CapacityPlanner.compare(
            peakBusyGPUs: 10, demand: [.init(model: "m", share: 1, outputTokensPerGPUSecond: 1000)], current: "H100",
            throughput: ["m": ["H100": 1000, "A100-80GB": 500]], rates: ["H100": 4, "A100-80GB": 1.5, "L4": 0.5],
            candidates: ["H100", "A100-80GB", "L4"], horizonHours: 24, targetUtilization: 0.8)
        #expect(options.map(\.accelerator) == ["A100-80GB", "H100", "L4"])
        #expect(options[0].requiredGPUs == 25 && options[0].planCostUSD == 25 * 24 * 1.5) // 20 busy / 0.8
        #expect(options[1].requiredGPUs == 13 && options[1].planCostUSD == 13 * 24 * 4)   // 10 / 0.8 = 12.5
        #expect(options[2].requiredGPUs == nil && !options[2].measured && options[2].outputTokensPerGPUSecond["m"]! == nil)
    }
}

@Suite struct TokenWeightFitTests {
    @Test func recoversExactWeightsAndKeepsThemNonNegative() {
        // gpu_seconds = 0.003·uncached + 0·cached + 0.012·output: the fit finds it, R² = 1.
        let hours = (0..<20).map { i -> TokenWeightFit.Hour in
            let u = Double(100 + 37 * i), c = Double((i * 13) % 50), o = Double(20 + (i * 7) % 90)
            return .init(gpuSeconds: 0.003 * u + 0.012 * o, uncachedInput: u, cachedInput: c, output: o)
        }
        let fit = TokenWeightFit.fit(hours)!
        #expect(abs(fit.weights.input - 1) < 1e-9 && abs(fit.weights.output - 4) < 1e-6 && fit.weights.cachedInput < 1e-6)
        #expect(fit.rSquared > 0.999999)
        // Where plain least squares would go negative (more cached input, less time), NNLS holds at 0.
        let skewed = (0..<10).map { i -> TokenWeightFit.Hour in
            let c = Double(i * 100)
            return .init(gpuSeconds: 50 - 0.01 * c + Double(i % 3), uncachedInput: 1000, cachedInput: c, output: 100)
        }
        let s = TokenWeightFit.fit(skewed)!
        #expect(s.secondsPerToken.input >= 0 && s.secondsPerToken.cachedInput >= 0 && s.secondsPerToken.output >= 0)
        #expect(TokenWeightFit.fit(Array(hours.prefix(2))) == nil)
    }
}
