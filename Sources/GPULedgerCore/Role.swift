/// What a key may do (contract section 3, "Keys and roles").
public enum Role: String, Sendable, CaseIterable, Codable {
    /// Everything.
    case admin
    /// Read every tenant, manage budgets.
    case finance
    /// Write usage; bound to one tenant when the key has one.
    case ingest
    /// Read its own tenant only.
    case tenant
}

/// The holder of a key, as the API sees it.
public struct Principal: Sendable, Equatable {
    public var keyID: Int64
    public var name: String
    public var role: Role
    /// The tenant an `ingest` or `tenant` key is bound to.
    public var tenant: String?

    public init(keyID: Int64, name: String, role: Role, tenant: String?) {
        self.keyID = keyID
        self.name = name
        self.role = role
        self.tenant = tenant
    }

    public var canIngest: Bool { role == .admin || role == .ingest }

    /// Whether this key may write usage for `tenant`.
    public func mayIngest(for tenant: String) -> Bool {
        switch role {
        case .admin: return true
        case .ingest: return self.tenant == nil || self.tenant == tenant
        case .finance, .tenant: return false
        }
    }
}
