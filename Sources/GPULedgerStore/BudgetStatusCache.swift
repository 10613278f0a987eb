import GPULedgerCore
import Synchronization

/// The budget statuses last computed for the gauges, and when.
public final class BudgetStatusCache: Sendable {
    private let state = Mutex<(at: Timestamp, byName: [String: BudgetStatus])?>(nil)

    public init() {}

    public func store(_ statuses: [BudgetStatus], at: Timestamp) {
        state.withLock { $0 = (at, Dictionary(statuses.map { ($0.budget.name, $0) }, uniquingKeysWith: { a, _ in a })) }
    }

    /// The status of each of `budgets` computed for the gauges within `maxAge` of `now` from the
    /// same definition (an edited budget is not in it); the rest are for the caller to compute.
    public func lookup(_ budgets: [Budget], now: Timestamp, maxAge: Int64) -> (found: [BudgetStatus], at: Timestamp?, missing: [Budget]) {
        guard let (at, byName) = state.withLock({ $0 }), now.microseconds - at.microseconds <= maxAge else { return ([], nil, budgets) }
        var found: [BudgetStatus] = [], missing: [Budget] = []
        for b in budgets {
            if let s = byName[b.name], s.budget == b { found.append(s) } else { missing.append(b) }
        }
        return (found, found.isEmpty ? nil : at, missing)
    }
}
