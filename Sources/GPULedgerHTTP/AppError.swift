import Foundation
import GPULedgerCore
import GPULedgerStore
import Hummingbird
import NIOCore

/// Every error the API answers with, in the contract's one shape:
/// `{"error": {"code", "message", "details"?}}`. Other errors are mapped here, in one place.
public struct AppError: Error, HTTPResponseError, Sendable {
    public struct Detail: Sendable, Encodable, Equatable {
        public var index: Int?
        public var field: String?
        public var line: Int?
        public var offset: Int?
        public var message: String

        public init(index: Int? = nil, field: String? = nil, line: Int? = nil, offset: Int? = nil, message: String) {
            self.index = index; self.field = field; self.line = line; self.offset = offset; self.message = message
        }
    }

    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var details: [Detail]
    public var headers: HTTPFields
    /// For a refused ingest: how many records the request held (counted in the metrics).
    public var records: Int?

    public init(_ status: HTTPResponse.Status, code: String, message: String, details: [Detail] = [], headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers
    }

    public static func badRequest(_ message: String, code: String = "bad_request") -> AppError { .init(.badRequest, code: code, message: message) }
    public static func unauthorized(_ message: String) -> AppError {
        .init(.unauthorized, code: "unauthorized", message: message, headers: [.wwwAuthenticate: "Bearer"])
    }
    public static func forbidden(_ message: String) -> AppError { .init(.forbidden, code: "forbidden", message: message) }
    public static func notFound(_ message: String) -> AppError { .init(.notFound, code: "not_found", message: message) }
    public static func unavailable(_ message: String) -> AppError {
        .init(.serviceUnavailable, code: "database_unavailable", message: message, headers: [.retryAfter: "5"])
    }

    struct Body: Encodable {
        struct Inner: Encodable {
            var code: String
            var message: String
            var details: [Detail]?
        }
        var error: Inner
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = Body(error: .init(code: code, message: message, details: details.isEmpty ? nil : details))
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(body)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Maps anything thrown below the API to what the client sees.
    public static func from(_ error: any Error) -> AppError {
        switch error {
        case let e as AppError: return e
        case let e as AccessDenied: return .forbidden(e.message)
        case let e as InvalidInput:
            return AppError(.unprocessableContent, code: e.code, message: e.message,
                            details: e.problems.map { Detail(field: $0.field, message: $0.message) })
        case let e as ReportQueryError: return .badRequest(e.message, code: "bad_query")
        case let e as MalformedBody:
            return AppError(.badRequest, code: "malformed_json", message: e.description,
                            details: [Detail(line: e.line, offset: e.offset, message: e.reason)])
        case is NIOTooManyBytesError:
            return AppError(.contentTooLarge, code: "body_too_large", message: "the request body is over the size limit")
        case let e as HTTPError:
            let code: String
            switch e.status {
            case .notFound: code = "not_found"
            case .methodNotAllowed: code = "method_not_allowed"
            case .contentTooLarge: code = "body_too_large"
            case .badRequest: code = "bad_request"
            default: code = "http_\(e.status.code)"
            }
            let message = e.body ?? (e.status == .notFound ? "no such endpoint" : e.status.reasonPhrase)
            return AppError(e.status, code: code, message: message, headers: e.headers)
        default:
            switch StoreError.from(error) {
            case StoreError.unavailable:
                return .unavailable("the database is unreachable; nothing was stored; retry later")
            case StoreError.uniqueViolation(let m):
                return AppError(.conflict, code: "conflict", message: m)
            case StoreError.unstorableText:
                return AppError(.badRequest, code: "bad_text",
                                message: "a text value in the request holds the NUL character (U+0000), which cannot be stored; nothing was stored")
            default:
                return AppError(.internalServerError, code: "internal", message: "internal error; nothing was stored")
            }
        }
    }
}
