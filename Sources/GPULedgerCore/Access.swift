/// A key asked for something its role may not see or do (an API 403, a console refusal page).
public struct AccessDenied: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// Who may read what (contract section 3): `finance` and `admin` read every tenant, a `tenant`
/// key only its own, an `ingest` key nothing. The API and the console both ask here.
public enum Access {
    /// The tenant a read is limited to (nil: every tenant): a tenant key to its own (naming
    /// another is refused); admin and finance read what they ask for.
    public static func readScope(_ principal: Principal, asked: String?) throws(AccessDenied) -> String? {
        switch principal.role {
        case .admin, .finance: return asked
        case .tenant:
            if let asked, asked != principal.tenant { throw AccessDenied("this key reads only tenant \(principal.tenant ?? "")") }
            return principal.tenant
        case .ingest:
            throw AccessDenied("an ingest key writes usage; it cannot read reports")
        }
    }

    /// Refuses a read of `tenant`'s records by a key that may not read them.
    public static func requireRead(_ principal: Principal, tenant: String) throws(AccessDenied) {
        switch principal.role {
        case .admin, .finance: return
        case .tenant:
            guard principal.tenant == tenant else { throw AccessDenied("this key reads only tenant \(principal.tenant ?? "")") }
        case .ingest:
            throw AccessDenied("an ingest key writes usage; it cannot read it")
        }
    }

    /// Refuses a budget the key may not see: another tenant's, or the fleet's for a tenant key.
    public static func requireVisible(_ budget: Budget, to principal: Principal) throws(AccessDenied) {
        switch principal.role {
        case .admin, .finance: return
        case .tenant:
            guard budget.tenant != nil, budget.tenant == principal.tenant else {
                throw AccessDenied("this key reads only tenant \(principal.tenant ?? "")'s budgets")
            }
        case .ingest: throw AccessDenied("an ingest key writes usage; it cannot read budgets")
        }
    }

    /// Whether the key sees the whole fleet (admin and finance): every tenant, the fleet's
    /// figures, the shared pools' plans and weight fits; and manages budgets.
    public static func seesTheFleet(_ principal: Principal) -> Bool { principal.role == .admin || principal.role == .finance }
}
