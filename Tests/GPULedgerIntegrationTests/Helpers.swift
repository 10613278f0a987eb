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

/// A record's JSON; `overrides` maps a field to its raw JSON text, or to nil to leave it out.
func record(_ id: String, tenant: String = "acme", _ overrides: [String: String?] = [:]) -> String {
    var fields: [(String, String)] = [
        ("request_id", "\"\(id)\""), ("tenant", "\"\(tenant)\""), ("model", "\"llama-3.1-70b\""),
        ("accelerator", "\"H100\""), ("started_at", "\"2026-11-01T10:00:00Z\""), ("gpu_seconds", "2.5"),
        ("input_tokens", "1200"), ("output_tokens", "300"),
    ]
    for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
        if let i = fields.firstIndex(where: { $0.0 == key }) {
            if let value { fields[i].1 = value } else { fields.remove(at: i) }
        } else if let value {
            fields.append((key, value))
        }
    }
    return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
}

func storedCount(_ app: TestApp) async throws -> Int {
    try await app.database.withDatabase { db in try await UsageStore(database: db).count() }
}
