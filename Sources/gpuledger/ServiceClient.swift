import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The one HTTP client of the commands that talk to a running service (`ingest`, `budget`):
/// bearer key, a timeout, and the contract's error shape read back.
struct ServiceClient: Sendable {
    /// The request never got an answer (connection refused, reset, timed out).
    struct Unreachable: Error, CustomStringConvertible {
        var description: String
    }

    struct Reply {
        var status: Int
        var data: Data
        var response: HTTPURLResponse

        func header(_ name: String) -> String? { response.value(forHTTPHeaderField: name) }
        /// The contract's `error.message`, or the start of the body.
        var errorMessage: String { ServiceClient.message(data) }
    }

    let baseURL: String
    let key: String

    init(_ options: ServiceOptions) throws {
        baseURL = options.baseURL
        key = try options.apiKey()
    }

    func send(_ method: String, _ path: String, contentType: String? = nil, body: Data? = nil, timeout: TimeInterval = 60) async throws -> Reply {
        guard let url = URL(string: baseURL + path) else { throw Unreachable(description: "--url \(baseURL) is not a URL") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        request.httpBody = body
        request.timeoutInterval = timeout
        let data: Data, response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw Unreachable(description: "cannot reach \(baseURL): \(error.localizedDescription)")
        }
        guard let http = response as? HTTPURLResponse else { throw Unreachable(description: "no HTTP answer from \(baseURL)") }
        return Reply(status: http.statusCode, data: data, response: http)
    }

    static func message(_ data: Data) -> String {
        struct E: Decodable { struct I: Decodable { var message: String }; var error: I }
        if let e = try? JSONDecoder().decode(E.self, from: data) { return e.error.message }
        return String(decoding: data.prefix(500), as: UTF8.self)
    }
}
