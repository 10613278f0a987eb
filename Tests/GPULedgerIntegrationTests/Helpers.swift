import Foundation
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
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

/// A record of `tenant` at `at` with `gpuSeconds`, on `pool` (none: the accelerator's default rate).
func usageRecord(_ id: String, _ tenant: String, pool: String?, at: String, gpuSeconds: String) -> String {
    var o: [String: String?] = ["started_at": "\"\(at)\"", "gpu_seconds": gpuSeconds]
    if let pool { o["pool"] = "\"\(pool)\"" }
    return record(id, tenant: tenant, o)
}

func storedCount(_ app: TestApp) async throws -> Int {
    try await app.database.withDatabase { db in try await UsageStore(database: db).count() }
}

/// A rate-card folder holding `cards` (file name → rows, without the header) and a defaults file.
func pricingFolder(_ cards: [String: String], defaults: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpl-pricing-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    for (name, rows) in cards {
        try ("provider,region,accelerator,tier,usd_per_gpu_hour,effective_from,source\n" + rows).write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    }
    try ("accelerator,provider,region,tier\n" + defaults).write(toFile: dir + "/defaults.csv", atomically: true, encoding: .utf8)
    return dir
}

extension TestClientProtocol {
    func put(_ uri: String, key: String, body: String) async throws -> Answer {
        let headers: HTTPFields = [.authorization: "Bearer \(key)", .contentType: "application/json"]
        return try await execute(uri: uri, method: .put, headers: headers, body: ByteBuffer(string: body)) { r in
            Answer(status: r.status, headers: r.headers, body: String(buffer: r.body))
        }
    }

    func delete(_ uri: String, key: String) async throws -> Answer {
        try await execute(uri: uri, method: .delete, headers: [.authorization: "Bearer \(key)"]) { r in
            Answer(status: r.status, headers: r.headers, body: String(buffer: r.body))
        }
    }

    /// Posts records (JSON texts) as one array; fails the test unless all are accepted.
    func ingest(_ records: [String], key: String) async throws {
        let answer = try await post("/v1/usage", key: key, body: "[" + records.joined(separator: ",") + "]")
        #expect(answer.status == .ok, "ingest: \(answer.body)")
    }
}

/// A CSV text's rows as dictionaries by header name (RFC 4180, via the core's reader).
func csvRows(_ text: String) -> [[String: String]] {
    var rows = CSVRows.parse(text)
    guard !rows.isEmpty else { return [] }
    let header = rows.removeFirst().fields
    return rows.map { row in Dictionary(uniqueKeysWithValues: zip(header, row.fields)) }
}
