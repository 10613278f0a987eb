import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird
import NIOCore

/// `POST /v1/usage`.
struct UsageController {
    let usage: UsageStore
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
        let principal = try context.requirePrincipal()
        guard principal.canIngest else {
            throw AppError.forbidden("a \(principal.role.rawValue) key cannot write usage; use an ingest or admin key")
        }
        let format = try Self.bodyFormat(request.headers[.contentType])
        let limit = configuration.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw AppError(.contentTooLarge, code: "body_too_large",
                           message: "the body is \(length) bytes; the limit is \(limit) bytes (send smaller batches)")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw AppError(.contentTooLarge, code: "body_too_large",
                           message: "the body is over the limit of \(limit) bytes (send smaller batches)")
        }
        let parser = RecordParser(now: context.now, knownAccelerators: pricing.accelerators, maxTokens: RecordParser.serviceMaxTokens)
        let batch = try body.withUnsafeReadableBytes { raw in
            try parser.parse(UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count), format: format)
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
        let outcome = try await usage.ingest(batch.records)
        metrics.ingested(accepted: outcome.accepted, duplicates: outcome.duplicates, conflicts: outcome.conflicts.count)
        metrics.usage(outcome.acceptedIndexes.map { $0.map { batch.records[$0] } } ?? batch.records)
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

/// `GET /v1/usage/{tenant}/{request_id}`: the stored record, with its cost.
struct UsageRecordAnswer: Encodable {
    var stored: StoredRecord
    var cost: RequestCost?

    struct RateAnswer: Encodable {
        var usd_per_gpu_hour: String
        var source: String
        var effective_from: String?
        var provider: String
        var region: String
        var tier: String
        /// The rate card row's own `source` note.
        var note: String

        enum CodingKeys: String, CodingKey { case usd_per_gpu_hour, source, effective_from, provider, region, tier, note }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(usd_per_gpu_hour, forKey: .usd_per_gpu_hour)
            try c.encode(source, forKey: .source)
            try c.encode(effective_from, forKey: .effective_from) // null for a pool's override price
            try c.encode(provider, forKey: .provider)
            try c.encode(region, forKey: .region)
            try c.encode(tier, forKey: .tier)
            try c.encode(note, forKey: .note)
        }
    }

    enum Keys: String, CodingKey {
        case request_id, tenant, model, accelerator, pool, started_at, gpu_seconds, input_tokens, output_tokens,
             cached_input_tokens, ttft_ms, tpot_ms, e2e_ms, status, error_type, labels, ingested_at,
             cost_usd, cost_per_1m_tokens_usd, rate
    }

    func encode(to encoder: any Encoder) throws {
        let r = stored.record
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(r.requestID, forKey: .request_id)
        try c.encode(r.tenant, forKey: .tenant)
        try c.encode(r.model, forKey: .model)
        try c.encode(r.accelerator, forKey: .accelerator)
        try c.encode(r.pool, forKey: .pool)
        try c.encode(r.startedAt.rfc3339, forKey: .started_at)
        try c.encode(Decimal(string: r.gpuSeconds, locale: Locale(identifier: "en_US_POSIX")) ?? 0, forKey: .gpu_seconds)
        try c.encode(r.inputTokens, forKey: .input_tokens)
        try c.encode(r.outputTokens, forKey: .output_tokens)
        try c.encode(r.cachedInputTokens, forKey: .cached_input_tokens)
        try c.encode(r.ttftMs, forKey: .ttft_ms)
        try c.encode(r.tpotMs, forKey: .tpot_ms)
        try c.encode(r.e2eMs, forKey: .e2e_ms)
        try c.encode(r.status.rawValue, forKey: .status)
        try c.encode(r.errorType, forKey: .error_type)
        try c.encode(Dictionary(uniqueKeysWithValues: r.labels.map { ($0.key, $0.value) }), forKey: .labels)
        try c.encode(stored.ingestedAt.rfc3339, forKey: .ingested_at)
        // Null when no rate applies (contract); `source` is the rate card file the rate came from.
        try c.encode(cost?.costUSD, forKey: .cost_usd)
        try c.encode(cost?.costPer1MTokensUSD, forKey: .cost_per_1m_tokens_usd)
        try c.encode(cost.map {
            RateAnswer(usd_per_gpu_hour: $0.usdPerGPUHour, source: $0.card, effective_from: $0.effectiveFrom?.rfc3339,
                       provider: $0.provider, region: $0.region, tier: $0.tier, note: $0.source)
        }, forKey: .rate)
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
        let cost = try await rates.cost(tenant: tenant, requestID: requestID)
        return try JSONResponse.make(UsageRecordAnswer(stored: stored, cost: cost))
    }
}
