import Foundation
import GPULedgerCore
import GPULedgerStore
import HTTPTypes
import Hummingbird
import Logging
import Tracing

/// Outermost: gives every request an id (`X-Request-Id`, or a new one), puts it in the logger's
/// metadata and the response header, and logs one line per request.
public struct RequestLogMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let id = request.headers[.xRequestID].flatMap { Self.isSafe($0) ? $0 : nil } ?? Self.newID()
        context.requestID = id
        context.logger[metadataKey: "request_id"] = .string(id)
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            // ErrorMiddleware maps everything; this is only reached for errors thrown while mapping.
            response = try AppError.from(error).response(from: request, context: context)
        }
        response.headers[.xRequestID] = id
        let elapsed = ContinuousClock.now - start
        var metadata: Logger.Metadata = [
            "method": .string(request.method.rawValue),
            "path": .string(request.uri.path),
            "status": .stringConvertible(response.status.code),
            "duration_ms": .string(String(format: "%.2f", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)),
        ]
        if let route = context.endpointPath { metadata["route"] = .string(route) }
        for (key, value) in context.logFields.all { metadata[key] = .string(value) }
        context.logger.info("request", metadata: metadata)
        return response
    }

    static func isSafe(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 128 && s.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    static func newID() -> String {
        var rng = SystemRandomNumberGenerator()
        let n = rng.next() as UInt64
        return String(n, radix: 16)
    }
}

/// Reads the service's clock once per request into `context.now`.
public struct ClockMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext
    let clock: WallClock

    public init(clock: WallClock) { self.clock = clock }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.now = clock.now()
        return try await next(request, context)
    }
}

/// Maps every error to the contract's error shape, in one place.
public struct ErrorMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let mapped = AppError.from(error)
            if mapped.status.code >= 500 {
                context.logger.error("request failed", metadata: ["error": .string(String(describing: error))])
            }
            return try mapped.response(from: request, context: context)
        }
    }
}

/// `Authorization: Bearer <key>` on every `/v1` route: 401 without a known key.
public struct AuthMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext
    let keys: KeyStore

    public init(keys: KeyStore) { self.keys = keys }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw AppError.unauthorized("an API key is required: Authorization: Bearer <key>")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw AppError.unauthorized("the Authorization header must be: Bearer <key>")
        }
        let key = parts[1].trimmingCharacters(in: .whitespaces)
        guard let principal = try await withSpan("auth", ofKind: .internal, { _ in try await keys.authenticate(key) }) else {
            throw AppError.unauthorized("unknown or revoked API key")
        }
        var context = context
        context.principal = principal
        context.logFields["key_id"] = "\(principal.keyID)"
        if let tenant = principal.tenant { context.logFields["tenant"] = tenant }
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let xRequestID = Self("X-Request-Id")!
}
