import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird
import Tracing
import NIOCore

/// `POST /v1/usage`.
struct UsageController {
    let usage: UsageStore
    let pools: PoolStore
    let rates: RateStore
    let pricing: PricingState
    let configuration: AppConfiguration
    let metrics: AppMetrics

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("usage", use: ingest)
        group.get("usage/:tenant/:request_id", use: record)
    }

    struct IngestAnswer: Encodable {
        var accepted: Int
        var duplicates: Int
        var conflicts: [String]
    }

    @Sendable func ingest(_ request: Request, context: AppRequestContext) async throws -> Response {
        do {
            return try await ingestBatch(request, context: context)
        } catch let e as AppError where e.status.code < 500 {
            if let reason = Self.rejectionReasons[e.code] { metrics.rejected(reason: reason, records: e.records ?? 1) }
            throw e
        } catch let e as MalformedBody {
            metrics.rejected(reason: "malformed", records: 1)
            throw e
        }
    }

    /// Error codes of refused batches → the rejection reason counted in the metrics.
    static let rejectionReasons = ["invalid_records": "invalid", "body_too_large": "too_large", "too_many_records": "too_many",
                                   "unsupported_media_type": "unsupported_media_type", "forbidden": "forbidden"]

    func ingestBatch(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try IngestGate.writer(context)
        let format = try Self.bodyFormat(request.headers[.contentType])
        let body = try await IngestGate.body(request, limit: configuration.maxBodyBytes, unit: "batches")
        var parser = RecordParser(now: context.now, knownAccelerators: pricing.accelerators, maxTokens: RecordParser.serviceMaxTokens)
        func parse() throws -> ParsedBatch {
            try withSpan("parse", ofKind: .internal) { span in
                let batch = try body.withUnsafeReadableBytes { raw in
                    try parser.parse(UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count), format: format)
                }
                span.attributes["gpuledger.records"] = batch.count
                return batch
            }
        }
        var batch = try parse()
        // A record on a pool without gpu_seconds is valid when the pool allocates by tokens: only
        // then are the token pools looked up (the batch parsed again), not on every batch.
        if batch.poolWithoutGPUSeconds {
            parser.tokenPools = try await pools.tokenPools()
            batch = try parse()
        }
        context.logFields["records"] = "\(batch.count)"
        if let first = batch.records.first?.tenant, batch.records.allSatisfy({ $0.tenant == first }) { context.logFields["tenant"] = first }
        if batch.count > configuration.maxRecordsPerRequest {
            var e = AppError(.contentTooLarge, code: "too_many_records",
                             message: "the body holds \(batch.count) records; at most \(configuration.maxRecordsPerRequest) are taken per request")
            e.records = batch.count
            throw e
        }
        if !batch.errors.isEmpty {
            let shown = batch.errors.prefix(100).map { AppError.Detail(index: $0.index, field: $0.field, message: $0.message) }
            var message = "\(batch.invalidRecords) of \(batch.count) records are invalid; nothing was stored"
            if batch.errors.count > shown.count {
                message += "; \(batch.errors.count - shown.count) more problems are not listed"
            }
            var e = AppError(.unprocessableContent, code: "invalid_records", message: message, details: Array(shown))
            e.records = batch.count
            throw e
        }
        if principal.role == .ingest, let bound = principal.tenant,
           let i = batch.records.firstIndex(where: { $0.tenant != bound }) {
            var e = AppError.forbidden("this key writes usage only for tenant \(bound); record \(i) is for tenant \(batch.records[i].tenant); nothing was stored")
            e.records = batch.count
            throw e
        }
        let outcome = try await IngestGate.store(batch.records, in: usage, metrics: metrics)
        context.logger.info("ingested", metadata: [
            "records": .stringConvertible(batch.count), "accepted": .stringConvertible(outcome.accepted),
            "duplicates": .stringConvertible(outcome.duplicates), "conflicts": .stringConvertible(outcome.conflicts.count),
        ])
        return try JSONResponse.make(IngestAnswer(accepted: outcome.accepted, duplicates: outcome.duplicates, conflicts: outcome.conflicts))
    }

    static func bodyFormat(_ contentType: String?) throws -> BodyFormat {
        let media = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        switch media {
        case "application/json": return .json
        case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines": return .ndjson
        default:
            throw AppError(.unsupportedMediaType, code: "unsupported_media_type",
                           message: "Content-Type \(media.isEmpty ? "(none)" : media) is not taken; send application/json or application/x-ndjson")
        }
    }
}

/// `GET /v1/usage/{tenant}/{request_id}`: the stored record, with its cost (every field named;
/// null where absent, and the cost and rate null when no rate applies).
struct UsageRecordAnswer: Encodable {
    struct RateAnswer: Encodable {
        var usd_per_gpu_hour: String
        /// The rate card file the rate came from.
        var source: String
        /// null for a pool's override price.
        var effective_from: Nullable<String>
        var provider: String
        var region: String
        var tier: String
        /// The rate card row's own `source` note.
        var note: String
    }

    var request_id, tenant, model, accelerator: String
    var pool: Nullable<String>
    var started_at: String
    /// null: not measured (a record on a pool that allocates by tokens).
    var gpu_seconds: Nullable<Decimal>
    var input_tokens, output_tokens: Int64
    var cached_input_tokens: Nullable<Int64>
    var ttft_ms, tpot_ms, e2e_ms, queue_ms: Nullable<Double>
    var status: String
    var error_type: Nullable<String>
    var labels: [String: String]
    var ingested_at: String
    /// How the cost was found: `gpu_seconds` (its own GPU-seconds priced) or `tokens` (its
    /// weight's share of its hour's paid cost in a pool that allocates by tokens).
    var allocation: String
    var cost_usd: Nullable<String>
    var cost_per_1m_tokens_usd: Nullable<String>
    var rate: Nullable<RateAnswer>

    init(stored: StoredRecord, cost: RequestCost?) {
        let r = stored.record
        request_id = r.requestID; tenant = r.tenant; model = r.model; accelerator = r.accelerator
        pool = .init(r.pool)
        started_at = r.startedAt.rfc3339
        gpu_seconds = .init(r.gpuSeconds.flatMap(CentRounding.decimal))
        input_tokens = r.inputTokens; output_tokens = r.outputTokens
        cached_input_tokens = .init(r.cachedInputTokens)
        ttft_ms = .init(r.ttftMs); tpot_ms = .init(r.tpotMs); e2e_ms = .init(r.e2eMs); queue_ms = .init(r.queueMs)
        status = r.status.rawValue
        error_type = .init(r.errorType)
        labels = Dictionary(uniqueKeysWithValues: r.labels.map { ($0.key, $0.value) })
        ingested_at = stored.ingestedAt.rfc3339
        allocation = cost?.allocation ?? (r.gpuSeconds == nil ? Allocation.tokens.rawValue : Allocation.gpuSeconds.rawValue)
        cost_usd = .init(cost?.costUSD)
        cost_per_1m_tokens_usd = .init(cost?.costPer1MTokensUSD)
        rate = .init(cost.map {
            RateAnswer(usd_per_gpu_hour: $0.usdPerGPUHour, source: $0.card, effective_from: .init($0.effectiveFrom?.rfc3339),
                       provider: $0.provider, region: $0.region, tier: $0.tier, note: $0.source)
        })
    }
}

extension UsageController {
    @Sendable func record(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let tenant = try PathName.decoded(context, "tenant")
        let requestID = try PathName.decoded(context, "request_id")
        try Access.requireRead(principal, tenant: tenant)
        guard let stored = try await usage.find(tenant: tenant, requestID: requestID) else {
            throw AppError.notFound("no usage record \(requestID) for tenant \(tenant)")
        }
        let cost = try await rates.cost(tenant: tenant, requestID: requestID, now: context.now)
        return try JSONResponse.make(UsageRecordAnswer(stored: stored, cost: cost))
    }
}
