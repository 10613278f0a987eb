import GPULedgerCore
import Hummingbird

/// The per-request context: who is asking, and the request's id.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthMiddleware` on `/v1` routes.
    public var principal: Principal?
    /// From `X-Request-Id`, or made here; echoed in the response and in every log line.
    public var requestID: String = ""

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }

    /// The authenticated principal; `/v1` routes are only reached through `AuthMiddleware`.
    public func requirePrincipal() throws -> Principal {
        guard let principal else { throw AppError.unauthorized("missing API key") }
        return principal
    }
}
