import Foundation
import OTLPProto
import SwiftProtobuf

public typealias ExportTraceServiceRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
public typealias ExportTraceServiceResponse = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse

/// The two bodies of OTLP/HTTP: binary protobuf and OTLP's JSON mapping of it.
public enum OTLPEncoding: Sendable {
    case protobuf, json

    public var contentType: String {
        switch self {
        case .protobuf: "application/x-protobuf"
        case .json: "application/json"
        }
    }

    /// From a `Content-Type` (parameters ignored); nil for any other media type.
    public init?(contentType: String?) {
        let media = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        switch media {
        case "application/x-protobuf", "application/protobuf": self = .protobuf
        case "application/json": self = .json
        default: return nil
        }
    }
}

/// A body that is not an OTLP trace export; the message says why.
public struct MalformedExport: Error, Sendable {
    public var message: String
    init(_ message: String) { self.message = message }
}

public enum TraceExport {
    /// Decodes an `ExportTraceServiceRequest`. Unknown fields are kept (protobuf) or skipped
    /// (JSON), as OTLP asks of a receiver; but a protobuf body whose only content is unknown
    /// fields is not taken for an export (random bytes often parse as that).
    public static func decode(_ body: Data, as encoding: OTLPEncoding) throws(MalformedExport) -> ExportTraceServiceRequest {
        switch encoding {
        case .protobuf:
            let request: ExportTraceServiceRequest
            do {
                request = try ExportTraceServiceRequest(serializedBytes: body)
            } catch {
                throw MalformedExport("the body is not an OTLP ExportTraceServiceRequest in protobuf (\(reason(error)))")
            }
            if request.resourceSpans.isEmpty, !request.unknownFields.data.isEmpty {
                throw MalformedExport("the body is not an OTLP ExportTraceServiceRequest in protobuf (it holds no resource_spans, only fields that message does not have)")
            }
            return request
        case .json:
            let fixed: Data
            do { fixed = try hexIDsToBase64(body) } catch let e as MalformedExport { throw e } catch {
                throw MalformedExport("the body is not JSON (\(error.localizedDescription))")
            }
            do {
                var options = JSONDecodingOptions()
                options.ignoreUnknownFields = true
                return try ExportTraceServiceRequest(jsonUTF8Data: fixed, options: options)
            } catch {
                throw MalformedExport("the body is not an OTLP ExportTraceServiceRequest in OTLP's JSON encoding (\(reason(error)))")
            }
        }
    }

    /// OTLP's `ExportTraceServiceResponse`, in the request's encoding: `partial_success` set only
    /// when some spans were rejected (OTLP: an export accepted whole leaves it unset).
    public static func answer(rejectedSpans: Int, errorMessage: String, encoding: OTLPEncoding) -> Data {
        var response = ExportTraceServiceResponse()
        if rejectedSpans > 0 {
            response.partialSuccess.rejectedSpans = Int64(rejectedSpans)
            response.partialSuccess.errorMessage = errorMessage
        }
        switch encoding {
        case .protobuf: return (try? response.serializedBytes()) ?? Data()
        case .json: return (try? response.jsonUTF8Data()) ?? Data("{}".utf8)
        }
    }

    static func reason(_ error: any Error) -> String {
        switch error {
        case let e as BinaryDecodingError:
            switch e {
            case .truncated: "truncated"
            case .malformedProtobuf: "malformed protobuf"
            case .invalidUTF8: "a string that is not UTF-8"
            case .messageDepthLimit: "nested too deeply"
            default: "\(e)"
            }
        case let e as JSONDecodingError: "\(e)"
        default: "\(error)"
        }
    }

    /// OTLP's JSON writes trace and span ids in hex, where protobuf's JSON mapping (which the
    /// decoder follows) expects base64: turns them into base64 before decoding.
    static func hexIDsToBase64(_ body: Data) throws -> Data {
        guard var top = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw MalformedExport("the body is not an OTLP ExportTraceServiceRequest in OTLP's JSON encoding (not a JSON object)")
        }
        let idKeys: Set<String> = ["traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"]
        func fix(_ object: inout [String: Any]) {
            for key in idKeys {
                if let text = object[key] as? String, let bytes = hexBytes(text) { object[key] = Data(bytes).base64EncodedString() }
            }
        }
        func each(_ object: inout [String: Any], _ keys: [String], _ body: (inout [String: Any]) -> Void) {
            guard let key = keys.first(where: { object[$0] != nil }), var list = object[key] as? [Any] else { return }
            for i in list.indices {
                if var element = list[i] as? [String: Any] { body(&element); list[i] = element }
            }
            object[key] = list
        }
        each(&top, ["resourceSpans", "resource_spans"]) { rs in
            each(&rs, ["scopeSpans", "scope_spans"]) { ss in
                each(&ss, ["spans"]) { span in
                    fix(&span)
                    each(&span, ["links"]) { fix(&$0) }
                }
            }
        }
        return try JSONSerialization.data(withJSONObject: top)
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard !utf8.isEmpty, utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let h = nibble(utf8[i]), let l = nibble(utf8[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }
}
