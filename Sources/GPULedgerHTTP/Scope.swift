import GPULedgerCore

/// The tenant a read is limited to, by `Access.readScope`, and put in the request's log line; a
/// `tenant=` that no tenant can be named is a 400 (a typo must not read as an empty report).
public enum Scope {
    public static func tenant(_ principal: Principal, asked: String?, log: LogFields) throws -> String? {
        if let asked, !UsageRecord.isValidTenant(asked) {
            throw AppError.badRequest("tenant=\(asked) is not a tenant name (^[a-z0-9][a-z0-9._-]{0,62}$)", code: "bad_query")
        }
        let tenant = try Access.readScope(principal, asked: asked)
        if let tenant { log["tenant"] = tenant }
        return tenant
    }
}
