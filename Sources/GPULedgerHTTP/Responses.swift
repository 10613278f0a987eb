import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An optional field that the JSON answer always carries: `null` when absent (synthesized
/// `Encodable` leaves a nil optional out, and the contract's answers name every field).
public struct Nullable<Wrapped: Encodable>: Encodable {
    public var value: Wrapped?
    public init(_ value: Wrapped?) { self.value = value }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}

public enum JSONResponse {
    public static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

public enum CSVResponse {
    public static func make(_ text: String, filename: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"\(filename)\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// A coding key made at run time (grouped answers whose keys are the groups asked for).
public struct DynamicKey: CodingKey, ExpressibleByStringLiteral {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(_ s: String) { stringValue = s }
    public init(stringLiteral s: String) { stringValue = s }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

/// A JSON request body (budgets, pools: small objects read whole).
public enum JSONBody {
    /// The body as a JSON object; 400 when it is not one, 415 when it is not JSON.
    public static func object(_ request: Request) async throws -> [String: Any] {
        let media = request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard media == "application/json" else {
            throw AppError(.unsupportedMediaType, code: "unsupported_media_type", message: "send application/json")
        }
        let body = try await request.body.collect(upTo: 64 * 1024)
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            throw AppError(.badRequest, code: "malformed_json", message: "the body must be one JSON object")
        }
        return object
    }
}
