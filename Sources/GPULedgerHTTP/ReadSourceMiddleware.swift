import Foundation
import GPULedgerCore
import GPULedgerStore
import HTTPTypes
import Hummingbird

extension HTTPField.Name {
    /// Asks for the primary's freshness: `X-GPULedger-Consistency: primary`.
    public static let gpuledgerConsistency = Self("X-GPULedger-Consistency")!
    /// Where the answer's reads went: `replica` or `primary`.
    public static let gpuledgerReadFrom = Self("X-GPULedger-Read-From")!
    /// The replica's last replayed commit (RFC 3339), when the answer was read there.
    public static let gpuledgerReplicaReplayedAt = Self("X-GPULedger-Replica-Replayed-At")!
    /// Seconds the replica was behind (0: it had replayed all it had received).
    public static let gpuledgerReplicaLag = Self("X-GPULedger-Replica-Lag-Seconds")!
}

/// With a read replica (`DATABASE_READ_URL`): says in each answer where its reads went, and
/// sends a request with `X-GPULedger-Consistency: primary` to the primary. An answer that read
/// nothing through the replica-routed stores gets no such header.
public struct ReadSourceMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let report = ReadReport()
        let consistency = request.headers[.gpuledgerConsistency]?.lowercased()
        if let consistency, consistency != "primary", consistency != "any" {
            throw AppError.badRequest("X-GPULedger-Consistency takes primary or any, not \(consistency)", code: "bad_header")
        }
        var response = try await ReadContext.$report.withValue(report) {
            try await ReadContext.$primaryOnly.withValue(consistency == "primary") { try await next(request, context) }
        }
        if let f = report.figures {
            response.headers[.gpuledgerReadFrom] = f.source.rawValue
            if f.source == .replica {
                if let at = f.replayedAt { response.headers[.gpuledgerReplicaReplayedAt] = at.rfc3339 }
                if let lag = f.lagSeconds { response.headers[.gpuledgerReplicaLag] = String(format: "%.3f", lag) }
            }
        }
        return response
    }
}
