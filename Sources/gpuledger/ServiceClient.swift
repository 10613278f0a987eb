import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The one HTTP client of the commands that talk to a running service (`ingest`, `budget`,
/// `period close`): bearer key, a timeout, and the contract's error shape read back.
///
/// AsyncHTTPClient, not Foundation's URLSession: on Linux, URLSession kept a CPU busy for as
/// long as it waited for an answer (`gpuledger ingest` against a service taking 3 s to answer:
/// 2.9 s of CPU in 3.0 s), which on a small machine took the CPU from the service it waited for.
struct ServiceClient: Sendable {
    /// The request never got an answer (connection refused, reset, timed out).
    struct Unreachable: Error, CustomStringConvertible {
        var description: String
    }

    struct Reply {
        var status: Int
        var data: Data
        var headers: HTTPHeaders

        func header(_ name: String) -> String? { headers.first(name: name) }
        /// The contract's `error.message`, or the start of the body.
        var errorMessage: String { ServiceClient.message(data) }
    }

    /// The most of an answer that is read (the largest are report exports).
    static let maxAnswerBytes = 256 * 1024 * 1024

    /// One client for the process (never shut down: it lives as long as the command). A refused
    /// connection fails the request at once (AsyncHTTPClient would otherwise keep reconnecting
    /// until the request's deadline, so `budget check` against a stopped service took its whole
    /// 60 s): `ingest` retries with its own back-off and says so, `budget check` exits 2.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    let baseURL: String
    let key: String

    init(_ options: ServiceOptions) throws {
        baseURL = options.baseURL
        guard let url = URL(string: baseURL), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty else {
            throw ValidationError("--url \(baseURL) is not an http:// or https:// URL")
        }
        key = try options.apiKey()
    }

    func send(_ method: String, _ path: String, contentType: String? = nil, body: Data? = nil, timeout: TimeInterval = 60) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await Self.http.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            let bytes = try await response.body.collect(upTo: Self.maxAnswerBytes)
            return Reply(status: Int(response.status.code), data: Data(buffer: bytes), headers: response.headers)
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            throw Unreachable(description: "no answer from \(baseURL) within \(Int(timeout)) s")
        } catch let error as IOError {
            throw Unreachable(description: "cannot reach \(baseURL): \(String(cString: strerror(error.errnoCode)))")
        } catch {
            throw Unreachable(description: "cannot reach \(baseURL): \(error)")
        }
    }

    static func message(_ data: Data) -> String {
        struct E: Decodable { struct I: Decodable { var message: String }; var error: I }
        if let e = try? JSONDecoder().decode(E.self, from: data) { return e.error.message }
        return String(decoding: data.prefix(500), as: UTF8.self)
    }
}
