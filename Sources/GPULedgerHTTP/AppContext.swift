import GPULedgerCore
import Hummingbird
import Synchronization

/// The per-request context: who is asking, and the request's id.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthMiddleware` on `/v1` routes.
    public var principal: Principal?
    /// From `X-Request-Id`, or made here; echoed in the response and in every log line.
    public var requestID: String = ""
    /// What a handler adds to the request's log line (the tenant it served, the records it took);
    /// a reference, so that the outermost middleware sees what the handler set.
    public let logFields = LogFields()
    /// The service clock's reading for this request (`ClockMiddleware`): every default that means
    /// "now" in one answer is this one instant.
    public var now = Timestamp(microseconds: 0)

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }

    /// The authenticated principal; `/v1` routes are only reached through `AuthMiddleware`.
    public func requirePrincipal() throws -> Principal {
        guard let principal else { throw AppError.unauthorized("missing API key") }
        return principal
    }
}

/// Fields a handler adds to its request's log line.
public final class LogFields: Sendable {
    private let fields = Mutex<[String: String]>([:])

    public init() {}

    public subscript(key: String) -> String? {
        get { fields.withLock { $0[key] } }
        set { fields.withLock { $0[key] = newValue } }
    }

    public var all: [String: String] { fields.withLock { $0 } }
}
