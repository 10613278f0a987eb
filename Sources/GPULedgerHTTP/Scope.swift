import GPULedgerCore

/// The tenant a read is limited to, by `Access.readScope`, and put in the request's log line.
public enum Scope {
    public static func tenant(_ principal: Principal, asked: String?, log: LogFields) throws -> String? {
        let tenant = try Access.readScope(principal, asked: asked)
        if let tenant { log["tenant"] = tenant }
        return tenant
    }
}
