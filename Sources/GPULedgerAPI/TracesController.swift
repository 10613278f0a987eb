import CompressNIO
import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerOTLP
import GPULedgerStore
import Hummingbird
import Tracing
import NIOCore

/// `POST /v1/traces`: OTLP/HTTP trace exports (contract section 5, "OpenTelemetry ingest"). Each
/// span with input tokens becomes a usage record through the record parser of `/v1/usage` and
/// the same durable, idempotent write; spans that map to invalid records are rejected one by
/// one (OTLP's partial success), not the whole export.
struct TracesController {
    let usage: UsageStore
    let pools: PoolStore
    let pricing: PricingState
    let configuration: AppConfiguration
    let metrics: AppMetrics

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("traces", use: export)
    }

    /// How many rejected spans `partial_success.error_message` names.
    static let namedRejections = 5

    @Sendable func export(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try IngestGate.writer(context)
        guard let encoding = OTLPEncoding(contentType: request.headers[.contentType]) else {
            let media = request.headers[.contentType] ?? "(none)"
            throw AppError(.unsupportedMediaType, code: "unsupported_media_type",
                           message: "Content-Type \(media) is not taken; send an OTLP export as application/x-protobuf or application/json")
        }
        let body = try await self.body(request)
        let metrics = self.metrics
        let export: ExportTraceServiceRequest = try withSpan("parse", ofKind: .internal) { _ in
            do throws(MalformedExport) {
                return try TraceExport.decode(Data(body.readableBytesView), as: encoding)
            } catch {
                metrics.rejected(reason: "malformed", records: 1)
                throw AppError.badRequest(error.message, code: "malformed_body")
            }
        }

        let (accelerators, tokenPools) = try await pools.ingestView()
        let mapper = SpanMapper(fallbacks: configuration.otlpMapping.fallbacks(forKey: principal.name),
                                boundTenant: principal.role == .ingest ? principal.tenant : nil, poolAccelerators: accelerators)
        let mapped = mapper.map(export)
        if mapped.spans > configuration.maxRecordsPerRequest {
            throw AppError(.contentTooLarge, code: "too_many_records",
                           message: "the export holds \(mapped.spans) spans; at most \(configuration.maxRecordsPerRequest) are taken per request")
        }
        // Each span's record through the record parser on its own: one bad span rejects itself.
        let parser = RecordParser(now: context.now, knownAccelerators: pricing.accelerators, maxTokens: RecordParser.serviceMaxTokens,
                                  tokenPools: tokenPools)
        var records: [UsageRecord] = []
        records.reserveCapacity(mapped.candidates.count)
        var rejected = mapped.rejected
        for candidate in mapped.candidates {
            let batch = try parser.parse(candidate.json, format: .ndjson)
            if let record = batch.records.first, batch.errors.isEmpty {
                records.append(record)
            } else {
                rejected.append("\(candidate.span): " + batch.errors.map { "\($0.field): \($0.message)" }.joined(separator: "; "))
            }
        }
        if principal.role == .ingest, let bound = principal.tenant, let other = records.first(where: { $0.tenant != bound }) {
            throw AppError.forbidden("this key writes usage only for tenant \(bound); a span (request \(other.requestID)) is for tenant \(other.tenant); nothing was stored")
        }
        let outcome = try await IngestGate.store(records, in: usage, metrics: metrics)
        if !rejected.isEmpty { metrics.rejected(reason: "invalid", records: rejected.count) }
        context.logFields["records"] = "\(records.count)"
        context.logger.info("ingested spans", metadata: [
            "spans": .stringConvertible(mapped.spans), "ignored": .stringConvertible(mapped.ignored),
            "rejected": .stringConvertible(rejected.count), "accepted": .stringConvertible(outcome.accepted),
            "duplicates": .stringConvertible(outcome.duplicates),
        ])
        var message = ""
        if !rejected.isEmpty {
            message = "\(rejected.count) of \(mapped.spans) spans were rejected (nothing of them stored): "
                + rejected.prefix(Self.namedRejections).joined(separator: " | ")
            if rejected.count > Self.namedRejections { message += " | and \(rejected.count - Self.namedRejections) more" }
        }
        let answer = TraceExport.answer(rejectedSpans: rejected.count, errorMessage: message, encoding: encoding)
        return Response(status: .ok, headers: [.contentType: encoding.contentType], body: .init(byteBuffer: ByteBuffer(bytes: answer)))
    }

    /// The body, gunzipped when `Content-Encoding: gzip`; over the body limit (before or after
    /// decompression) is 413.
    func body(_ request: Request) async throws -> ByteBuffer {
        let limit = configuration.maxBodyBytes
        var body = try await IngestGate.body(request, limit: limit, unit: "exports")
        let coding = request.headers[.contentEncoding]?.trimmingCharacters(in: .whitespaces).lowercased() ?? "identity"
        switch coding {
        case "identity", "": return body
        case "gzip", "x-gzip":
            do {
                return try body.decompress(with: .gzip(), maxSize: limit)
            } catch let e as CompressNIOError where e == .bufferOverflow {
                throw IngestGate.tooLarge("the decompressed body", limit: limit, unit: "exports")
            } catch {
                throw AppError.badRequest("the body is not valid gzip (Content-Encoding: gzip): \(error)", code: "malformed_body")
            }
        default:
            throw AppError(.unsupportedMediaType, code: "unsupported_content_encoding",
                           message: "Content-Encoding \(coding) is not taken; send the export uncompressed or with gzip")
        }
    }
}
