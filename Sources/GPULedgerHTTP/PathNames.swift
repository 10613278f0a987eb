import Foundation
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

    /// `{pool}` of `/v1/pools/{pool}`, percent-decoded (a pool name is any 1 to 64 characters).
    public static func pool(_ context: AppRequestContext) throws -> String {
        let name = try decoded(context, "pool")
        guard !name.isEmpty, name.count <= 64 else { throw AppError.badRequest("a pool name has 1 to 64 characters", code: "bad_path") }
        return name
    }

    /// A path parameter as the client meant it: the router gives it percent-encoded.
    public static func decoded(_ context: AppRequestContext, _ key: String) throws -> String {
        let raw = try context.parameters.require(key)
        guard let text = raw.removingPercentEncoding else {
            throw AppError.badRequest("the path's \(key) is not percent-encoded UTF-8", code: "bad_path")
        }
        return text
    }
}
