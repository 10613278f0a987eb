import GPULedgerCore
import GPULedgerHTTP
import Hummingbird
import NIOCore

/// What every usage-writing endpoint (`POST /v1/usage`, `POST /v1/traces`) checks first, in one
/// place: the key may write usage, and the body is within the limit.
enum IngestGate {
    /// The principal, when its key may write usage (admin, ingest); 403 otherwise.
    static func writer(_ context: AppRequestContext) throws -> Principal {
        let principal = try context.requirePrincipal()
        guard principal.canIngest else {
            throw AppError.forbidden("a \(principal.role.rawValue) key cannot write usage; use an ingest or admin key")
        }
        return principal
    }

    static func tooLarge(_ what: String, limit: Int, unit: String) -> AppError {
        AppError(.contentTooLarge, code: "body_too_large", message: "\(what) is over the limit of \(limit) bytes (send smaller \(unit))")
    }

    /// The whole body, refused (413, read no further) when its Content-Length or its bytes pass `limit`.
    static func body(_ request: Request, limit: Int, unit: String) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw tooLarge("the body (\(length) bytes)", limit: limit, unit: unit)
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw tooLarge("the body", limit: limit, unit: unit)
        }
    }
}
