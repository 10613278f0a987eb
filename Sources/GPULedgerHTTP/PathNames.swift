import GPULedgerCore
import Hummingbird

/// Path parameters that name a stored thing, checked where the route gives them.
public enum PathName {
    /// `{name}` of `/v1/budgets/{name}` (and the console's `/budgets/{name}`).
    public static func budget(_ context: AppRequestContext) throws -> String {
        let name = try context.parameters.require("name")
        guard Budget.validName(name) else {
            throw AppError.badRequest("a budget name has 1 to 128 characters: letters, digits, '.', '_', '-', starting with a letter or digit", code: "bad_path")
        }
        return name
    }

    /// `{pool}` of `/v1/pools/{pool}`.
    public static func pool(_ context: AppRequestContext) throws -> String {
        let name = try context.parameters.require("pool")
        guard !name.isEmpty, name.count <= 64 else { throw AppError.badRequest("a pool name has 1 to 64 characters", code: "bad_path") }
        return name
    }
}
