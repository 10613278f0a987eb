import Foundation

/// How many GPUs forecast demand needs, and what they cost.
public struct CapacityPlan: Sendable, Equatable {
    public var historyHours: Int
    /// The highest busy GPUs observed in an hour of the history.
    public var peakBusyGPUs: Double
    /// The horizon's peak busy GPUs at the plan's coverage.
    public var forecastPeakBusyGPUs: Double
    /// GPUs for the horizon's peak at the target utilization (no day needs more).
    public var requiredGPUs: Int
    /// The plan of each day (24 hours) of the horizon, in order.
    public var days: [Day]
    public var coverage: Double
    /// How many of this series' own earlier plans for the same horizon held, of how many.
    public var pastPlansHeld: Int
    public var pastPlans: Int
    /// `requiredGPUs × horizon hours × rate`; nil without a rate.
    public var planCostUSD: Decimal?
    /// GPUs the budget pays for over the horizon; nil without a budget or a rate.
    public var affordableGPUs: Int?
    public var fitsBudget: Bool?
    public var method: String

    public struct Day: Sendable, Equatable {
        /// Where the day starts, in days from the plan's start. Its peak is its own forecast at the
        /// plan's coverage, capped at the horizon's.
        public var offset: Int
        public var forecastPeakBusyGPUs: Double
        public var requiredGPUs: Int
    }
}

public enum CapacityPlanner {
    /// GPUs for `busy` busy GPUs at `target` utilization.
    public static func gpus(forBusy busy: Double, target: Double) -> Int {
        busy <= 0 ? 0 : Int((busy / target - 1e-9).rounded(.up))
    }

    /// `busyGPUs`: used GPU-seconds / 3600 per hour, oldest first, up to the hour before the
    /// plan starts; `horizonHours` is rounded up to whole days. required = ⌈forecast peak busy
    /// GPUs / target utilization⌉, the peak taken at `coverage` (see `PeakForecaster`).
    public static func plan(busyGPUs: [Double?], horizonHours: Int, targetUtilization: Double, coverage: Double = 0.9,
                            usdPerGPUHour: Decimal?, budgetUSD: Decimal?, currentGPUs: Int) -> CapacityPlan {
        let observed = busyGPUs.compactMap { $0 }
        let peak = observed.max() ?? 0
        let horizonDays = max(1, (horizonHours + PeakForecaster.day - 1) / PeakForecaster.day)
        var peaks = PeakForecaster.dailyPeaks(busyGPUs)
        // Less than a day of history: its highest hour stands for the day.
        if peaks.isEmpty && !observed.isEmpty { peaks = [peak] }
        let f = PeakForecaster(coverage: coverage).forecast(dailyPeaks: peaks, horizonDays: horizonDays)
        let days = f.dayPeaks.enumerated().map { i, p in
            CapacityPlan.Day(offset: i, forecastPeakBusyGPUs: p, requiredGPUs: gpus(forBusy: p, target: targetUtilization))
        }
        let required = gpus(forBusy: f.horizonPeak, target: targetUtilization)
        var method: String
        if peak <= 0 {
            method = "no usage in the history: nothing to plan for"
        } else {
            method = "daily peaks of busy GPUs (used GPU-seconds / 3600 in the busiest hour of each day) over \(f.historyDays) days, observed peak \(format(peak)); "
            method += "point forecast: the last 7 days' mean log peak with a damped trend\(f.historyDays >= 14 ? " and day-of-week effects" : "")"
            method += "; "
            switch f.margin {
            case .conformal:
                method += "plan: the \(f.center.rawValue) plus a split-conformal margin from this series' own errors over its last 21 days, for \(format(coverage * 100))% coverage"
            case .shorterHorizon:
                method += "plan: the \(f.center.rawValue) plus a split-conformal margin from this series' own errors at the longest shorter horizon with enough of them (too few \(horizonDays)-day ones yet), for \(format(coverage * 100))% coverage"
            case .normal:
                method += "too few days of errors for a conformal margin yet: the higher of the normal model's \(format(coverage * 100))% quantile of the horizon's maximum and the last 7 days' peak"
            case .observedPeak:
                method += "fewer than 4 days of history: planned on the highest daily peak seen"
            }
            method += f.margin == .observedPeak ? "" : " (center \(format(f.medianPeak)) busy GPUs, margin \(f.marginRatio >= 1 ? "+" : "")\(format((f.marginRatio - 1) * 100))%)"
            method += " puts the peak at \(format(f.horizonPeak)) busy GPUs"
            method += f.pastPlans > 0 ? "; this series' own earlier \(horizonDays)-day plans held \(f.pastPlansHeld) of \(f.pastPlans) times"
                : "; no earlier plan of this series can be checked yet"
        }
        method += "; at \(format(targetUtilization * 100))% target utilization that needs \(required) GPUs (\(currentGPUs) now)"
        var cost: Decimal?
        var affordable: Int?
        var fits: Bool?
        if let rate = usdPerGPUHour {
            let perGPU = rate * Decimal(horizonHours)
            cost = perGPU * Decimal(required)
            method += " at $\(rate)/GPU-hour"
            if let budget = budgetUSD {
                affordable = perGPU > 0 ? NSDecimalNumber(decimal: CentRounding.rounded(budget / perGPU, scale: 0, .down)).intValue : Int.max
                fits = required <= affordable!
                method += "; the budget pays for \(affordable!) GPUs"
            }
        } else {
            method += "; no rate in force for it, so no cost"
        }
        return CapacityPlan(historyHours: observed.count, peakBusyGPUs: peak, forecastPeakBusyGPUs: f.horizonPeak,
                            requiredGPUs: required, days: days, coverage: coverage, pastPlansHeld: f.pastPlansHeld, pastPlans: f.pastPlans,
                            planCostUSD: cost, affordableGPUs: affordable, fitsBudget: fits, method: method)
    }

    /// One accelerator type for the forecast demand.
    public struct Option: Sendable, Equatable {
        public var accelerator: String
        /// Output tokens per busy GPU-second of each model of the demand on this type; nil for a
        /// model never measured on it.
        public var outputTokensPerGPUSecond: [String: Double?]
        /// Whether every model of the demand was measured on this type (else no figures).
        public var measured: Bool { outputTokensPerGPUSecond.values.allSatisfy { $0 != nil } }
        public var busyGPUs: Double?
        public var requiredGPUs: Int?
        public var usdPerGPUHour: Decimal?
        public var planCostUSD: Decimal?
    }

    /// A model's part of the demand on the planned selection.
    public struct ModelDemand: Sendable {
        public var model: String
        /// Its share of the selection's busy GPU-seconds over the history.
        public var share: Double
        /// Its output tokens per busy GPU-second on the selection.
        public var outputTokensPerGPUSecond: Double
        public init(model: String, share: Double, outputTokensPerGPUSecond: Double) {
            self.model = model; self.share = share; self.outputTokensPerGPUSecond = outputTokensPerGPUSecond
        }
    }

    /// The forecast peak (`peakBusyGPUs` on the selection, whose accelerator is `current`) served
    /// on each of `candidates`: each model's output tokens at the peak, divided by its measured
    /// output tokens per busy GPU-second on that type (`throughput[model][accelerator]`). A type
    /// on which some model of the demand never ran is unmeasured: no guess. Cheapest first, then
    /// those without a rate, then the unmeasured.
    public static func compare(peakBusyGPUs: Double, demand: [ModelDemand], current: String?, throughput: [String: [String: Double]],
                               rates: [String: Decimal], candidates: [String], horizonHours: Int, targetUtilization: Double) -> [Option] {
        let options = candidates.map { accelerator -> Option in
            var perModel: [String: Double?] = [:]
            var busy = 0.0
            var known = true
            for d in demand {
                let measured = throughput[d.model]?[accelerator].flatMap { $0 > 0 ? $0 : nil }
                perModel[d.model] = measured
                if accelerator == current {
                    busy += peakBusyGPUs * d.share
                } else if let m = measured, d.outputTokensPerGPUSecond > 0 {
                    busy += peakBusyGPUs * d.share * d.outputTokensPerGPUSecond / m
                } else {
                    known = false
                }
            }
            if accelerator == current { for d in demand where perModel[d.model] == nil { perModel[d.model] = d.outputTokensPerGPUSecond } }
            guard known, !demand.isEmpty || accelerator == current else {
                return Option(accelerator: accelerator, outputTokensPerGPUSecond: perModel, usdPerGPUHour: rates[accelerator])
            }
            let required = gpus(forBusy: busy, target: targetUtilization)
            let rate = rates[accelerator]
            return Option(accelerator: accelerator, outputTokensPerGPUSecond: perModel, busyGPUs: busy, requiredGPUs: required,
                          usdPerGPUHour: rate, planCostUSD: rate.map { $0 * Decimal(horizonHours) * Decimal(required) })
        }
        return options.sorted { a, b in
            func rank(_ o: Option) -> Int { o.requiredGPUs == nil ? 2 : o.planCostUSD == nil ? 1 : 0 }
            if rank(a) != rank(b) { return rank(a) < rank(b) }
            if let x = a.planCostUSD, let y = b.planCostUSD, x != y { return x < y }
            return a.accelerator < b.accelerator
        }
    }

    static func format(_ x: Double) -> String { String(format: "%.2f", x) }
}
