import AsyncHTTPClient
import Foundation
import GPULedgerCore
import NIOCore
import NIOFoundationCompat

/// Prometheus's HTTP query API (`GET /api/v1/query`): instant vectors, nothing else.
public struct PrometheusClient: Sendable {
    public let baseURL: String
    let http: HTTPClient
    let timeout: TimeAmount

    /// `baseURL`: where Prometheus answers (`http://prometheus:9090`, a path prefix allowed).
    public init(baseURL: String, http: HTTPClient = .shared, timeout: TimeAmount = .seconds(5)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.http = http
        self.timeout = timeout
    }

    /// One series of an instant vector: its labels and value.
    public struct Sample: Sendable, Equatable {
        public var labels: [String: String]
        public var value: Double
    }

    public struct QueryError: Error, CustomStringConvertible {
        public var description: String
    }

    /// `promQL` evaluated at `time` (seconds since 1970).
    public func query(_ promQL: String, at time: Double) async throws -> [Sample] {
        var components = URLComponents()
        components.queryItems = [URLQueryItem(name: "query", value: promQL), URLQueryItem(name: "time", value: String(format: "%.3f", time))]
        // URLComponents leaves + and & alone in values; PromQL uses + (addition).
        let query = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        var request = HTTPClientRequest(url: "\(baseURL)/api/v1/query?\(query)")
        request.method = .GET
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: timeout)
        } catch {
            throw QueryError(description: "Prometheus at \(baseURL) could not be reached: \(error)")
        }
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok else {
            throw QueryError(description: "Prometheus at \(baseURL) answered \(response.status.code): \(String(buffer: body).prefix(300))")
        }
        return try Self.parse(Data(buffer: body))
    }

    /// The samples of a `/api/v1/query` answer of result type vector.
    static func parse(_ data: Data) throws -> [Sample] {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              object["status"] as? String == "success", let payload = object["data"] as? [String: Any] else {
            throw QueryError(description: "Prometheus's answer is not a successful query result")
        }
        guard payload["resultType"] as? String == "vector", let result = payload["result"] as? [[String: Any]] else {
            throw QueryError(description: "Prometheus's answer is not an instant vector")
        }
        return result.compactMap { series in
            guard let pair = series["value"] as? [Any], pair.count == 2, let text = pair[1] as? String, let value = Double(text), value.isFinite else {
                return nil
            }
            return Sample(labels: series["metric"] as? [String: String] ?? [:], value: value)
        }
    }
}
