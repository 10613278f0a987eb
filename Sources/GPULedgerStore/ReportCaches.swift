/// What the background refresh computes for the console, built once per service: the budget
/// statuses behind the gauges (computing a thousand takes about a second) and the hourly latency
/// percentiles of the Models page (kept warm for the fleet's last day).
public final class ReportCaches: Sendable {
    public let budgetStatuses = BudgetStatusCache()
    public let latencyHours = LatencyHours()

    public init() {}
}
