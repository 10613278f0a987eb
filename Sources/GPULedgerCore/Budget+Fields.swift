import Foundation

extension Budget {
    /// A budget from the fields of a `PUT /v1/budgets/{name}` body (or the console's form, in the
    /// same shape): every problem listed with its field.
    public static func parse(name: String, _ object: [String: Any]) throws(InvalidInput) -> Budget {
        var details: [InvalidInput.Problem] = []
        let allowed = ["tenant", "period", "amount_usd", "thresholds", "basis"]
        for key in object.keys.sorted() where !allowed.contains(key) {
            details.append(.init(field: key, message: "unknown field; the fields are \(allowed.joined(separator: ", "))"))
        }
        var tenant: String?
        if let raw = object["tenant"], !(raw is NSNull) {
            if let t = raw as? String, UsageRecord.isValidTenant(t) { tenant = t } else {
                details.append(.init(field: "tenant", message: "must be a tenant name (^[a-z0-9][a-z0-9._-]{0,62}$), or null for the whole fleet"))
            }
        }
        let period = (object["period"] as? String).flatMap(Cadence.init(rawValue:))
        if period == nil { details.append(.init(field: "period", message: "is required: monthly, quarterly or yearly")) }
        var amount: Decimal?
        if let s = object["amount_usd"] as? String, RateCards.isPlainDecimal(s), let d = CentRounding.decimal(s), d > 0 {
            amount = d
        } else {
            details.append(.init(field: "amount_usd", message: "is required: a decimal string above 0, such as \"25000\" (money is never a JSON number)"))
        }
        var thresholds = defaultThresholds
        if let raw = object["thresholds"] {
            var parsed: [Decimal] = []
            if let list = raw as? [Any], list.count <= 10 {
                for v in list {
                    guard let n = v as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue.isFinite,
                          n.doubleValue >= 0.01, n.doubleValue <= 10, let d = CentRounding.decimal(n.stringValue) else { parsed = []; break }
                    parsed.append(d)
                }
                if parsed.count != list.count || Set(parsed).count != parsed.count { parsed = [] }
            }
            if parsed.isEmpty && !((raw as? [Any])?.isEmpty ?? false) {
                details.append(.init(field: "thresholds", message: "must be a list of at most 10 distinct numbers from 0.01 to 10, fractions of the amount (such as [0.5, 0.8, 1.0])"))
            }
            thresholds = parsed.sorted()
        }
        var basis = Basis.usage
        if let raw = object["basis"] {
            if let s = raw as? String, let b = Basis(rawValue: s) { basis = b } else {
                details.append(.init(field: "basis", message: "must be usage or total (usage plus idle share)"))
            }
        }
        guard details.isEmpty, let period, let amount else {
            throw InvalidInput(code: "invalid_budget", message: "the budget is invalid; nothing was changed", problems: details)
        }
        return Budget(name: name, tenant: tenant, period: period, amount: amount, thresholds: thresholds, basis: basis)
    }
}
