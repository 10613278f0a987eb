import Foundation
import GPULedgerAPI
import GPULedgerCore
import GPULedgerStore
import GPULedgerTestSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

struct Answer {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: String

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }
    var error: [String: Any] { json["error"] as? [String: Any] ?? [:] }
    var errorCode: String? { error["code"] as? String }
    var details: [[String: Any]] { error["details"] as? [[String: Any]] ?? [] }
}

extension TestClientProtocol {
    func post(_ uri: String, key: String?, contentType: String? = "application/json", body: String, headers extra: HTTPFields = [:]) async throws -> Answer {
        var headers = extra
        if let key { headers[.authorization] = "Bearer \(key)" }
        if let contentType { headers[.contentType] = contentType }
        return try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body)) { r in
            Answer(status: r.status, headers: r.headers, body: String(buffer: r.body))
        }
    }

    func get(_ uri: String, key: String?, headers extra: HTTPFields = [:]) async throws -> Answer {
        var headers = extra
        if let key { headers[.authorization] = "Bearer \(key)" }
        return try await execute(uri: uri, method: .get, headers: headers) { r in
            Answer(status: r.status, headers: r.headers, body: String(buffer: r.body))
        }
    }
}

/// A record's JSON (see `SampleRecords.record`).
func record(_ id: String, tenant: String = "acme", _ overrides: [String: String?] = [:]) -> String {
    SampleRecords.record(id, tenant: tenant, overrides)
}

func storedCount(_ app: TestApp) async throws -> Int {
    try await app.database.withDatabase { db in try await UsageStore(database: db).count() }
}
