import Foundation
import GPULedgerCore
import GPULedgerStore
import Hummingbird
import NIOCore

/// `POST /v1/usage`.
struct UsageController {
    let usage: UsageStore
    let configuration: AppConfiguration

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("usage", use: ingest)
    }

    struct IngestAnswer: Encodable {
        var accepted: Int
        var duplicates: Int
        var conflicts: [String]
    }

    @Sendable func ingest(_ request: Request, context: AppRequestContext) async throws -> Response {
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
        let parser = RecordParser(now: .now(), knownAccelerators: configuration.knownAccelerators)
        let batch = try body.withUnsafeReadableBytes { raw in
            try parser.parse(UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count), format: format)
        }
        if batch.count > configuration.maxRecordsPerRequest {
            throw AppError(.contentTooLarge, code: "too_many_records",
                           message: "the body holds \(batch.count) records; at most \(configuration.maxRecordsPerRequest) are taken per request")
        }
        if !batch.errors.isEmpty {
            let shown = batch.errors.prefix(100).map { AppError.Detail(index: $0.index, field: $0.field, message: $0.message) }
            var message = "\(batch.invalidRecords) of \(batch.count) records are invalid; nothing was stored"
            if batch.errors.count > shown.count {
                message += "; \(batch.errors.count - shown.count) more problems are not listed"
            }
            throw AppError(.unprocessableContent, code: "invalid_records", message: message, details: Array(shown))
        }
        if principal.role == .ingest, let bound = principal.tenant,
           let i = batch.records.firstIndex(where: { $0.tenant != bound }) {
            throw AppError.forbidden("this key writes usage only for tenant \(bound); record \(i) is for tenant \(batch.records[i].tenant); nothing was stored")
        }
        let outcome = try await usage.ingest(batch.records)
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

enum JSONResponse {
    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
