import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird
import NIOCore

/// What every usage-writing endpoint (`POST /v1/usage`, `POST /v1/traces`) checks first, in one
/// place: the key may write usage, and the body is within the limit; and how it stores and counts
/// the records that passed.
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

    /// Stores the records (all or nothing, idempotent) and counts what was stored in the metrics.
    /// Their groups are found once, for the store's summary deltas and pool-days and for the
    /// usage metrics.
    static func store(_ records: [UsageRecord], in usage: UsageStore, metrics: AppMetrics) async throws -> IngestOutcome {
        let groups = RecordGroups(records)
        let outcome = try await usage.ingest(records, groups: groups)
        metrics.ingested(accepted: outcome.accepted, duplicates: outcome.duplicates, conflicts: outcome.conflicts.count)
        if let accepted = outcome.acceptedIndexes {
            metrics.usage(accepted.map { records[$0] })
        } else {
            metrics.usage(records, groups: groups)
        }
        return outcome
    }
}
