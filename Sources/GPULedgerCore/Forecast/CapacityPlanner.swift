import Foundation

/// How many GPUs forecast demand needs, and what they cost.
public struct CapacityPlan: Sendable, Equatable {
    public var historyHours: Int
    /// The highest busy GPUs observed in an hour of the history.
    public var peakBusyGPUs: Double
    /// The upper (p90) forecast of busy GPUs at the horizon's peak hour.
    public var forecastPeakBusyGPUs: Double
    public var requiredGPUs: Int
    /// `requiredGPUs × horizon hours × rate`; nil without a rate.
    public var planCostUSD: Decimal?
    /// GPUs the budget pays for over the horizon; nil without a budget or a rate.
    public var affordableGPUs: Int?
    public var fitsBudget: Bool?
    public var method: String
}

public enum CapacityPlanner {
    /// The quantile of the hourly forecast that capacity is planned for.
    public static let quantile = 0.9

    /// `busyGPUs`: used GPU-seconds / 3600 per hour, oldest first, up to the hour before the
    /// plan starts. required = ⌈forecast peak busy GPUs / target utilization⌉.
    public static func plan(busyGPUs: [Double?], horizonHours: Int, targetUtilization: Double, usdPerGPUHour: Decimal?,
                            budgetUSD: Decimal?, currentGPUs: Int) -> CapacityPlan {
        let observed = busyGPUs.compactMap { $0 }
        let peak = observed.max() ?? 0
        var method: String
        var forecastPeak = 0.0
        if let f = Forecaster.hourly.forecast(busyGPUs, horizon: horizonHours, unit: "hours") {
            // The p90 of each hour of the horizon; the plan covers the highest.
            let upper = f.quantiles(quantile)
            let (peakHour, value) = upper.enumerated().max { $0.element < $1.element }!
            forecastPeak = max(value, 0)
            method = "busy GPUs per hour (used GPU-seconds / 3600) over the last \(observed.count) hours, observed peak \(format(peak)); "
                + "\(f.method.components(separatedBy: ", fitted").first!) puts the p90 peak of the next \(horizonHours) hours at \(format(forecastPeak)) busy GPUs (hour \(peakHour + 1))"
        } else {
            method = "no usage in the last hours of history: nothing to plan for"
        }
        let required = forecastPeak <= 0 ? 0 : Int((forecastPeak / targetUtilization - 1e-9).rounded(.up))
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
        return CapacityPlan(historyHours: observed.count, peakBusyGPUs: peak, forecastPeakBusyGPUs: forecastPeak, requiredGPUs: required,
                            planCostUSD: cost, affordableGPUs: affordable, fitsBudget: fits, method: method)
    }

    static func format(_ x: Double) -> String { String(format: "%.2f", x) }
}
