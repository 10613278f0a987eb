import Foundation
import GPULedgerAPI
import GPULedgerCore
import GPULedgerStore
import Hummingbird
import Logging
import PostgresNIO

/// The whole service on a fresh test database, with one key of each role.
public struct TestApp: Sendable {
    public let database: TestDatabase
    public let configuration: AppConfiguration
    public let adminKey: String
    public let ingestKey: String
    /// An ingest key bound to tenant `acme`.
    public let acmeIngestKey: String
    public let financeKey: String
    /// A tenant key for `acme`.
    public let acmeTenantKey: String

    public static func make(configure: (inout AppConfiguration) -> Void = { _ in }) async throws -> TestApp {
        let database = try await TestDatabase.create()
        var configuration = AppConfiguration()
        configuration.dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("gpuledger-app-\(database.name)").path
        configuration.databaseAcquireTimeout = .seconds(60) // the suite shares two cores with the servers it starts
        configuration.budgetGaugeInterval = nil // a test refreshes the budget gauges itself
        configuration.summaryFoldInterval = nil // and folds the summary deltas when it means to
        configure(&configuration)
        let keys = try await database.withDatabase { db in
            let store = KeyStore(database: db)
            return [
                try await store.create(role: .admin, tenant: nil, name: "test admin").key,
                try await store.create(role: .ingest, tenant: nil, name: "test ingest").key,
                try await store.create(role: .ingest, tenant: "acme", name: "acme ingest").key,
                try await store.create(role: .finance, tenant: nil, name: "test finance").key,
                try await store.create(role: .tenant, tenant: "acme", name: "acme reader").key,
            ]
        }
        return TestApp(database: database, configuration: configuration, adminKey: keys[0], ingestKey: keys[1],
                       acmeIngestKey: keys[2], financeKey: keys[3], acmeTenantKey: keys[4])
    }

    /// This application's metrics (a registry of its own).
    public let metrics = AppMetrics()

    /// The application, as `gpuledger serve` builds it, on this test database.
    public func application() -> some ApplicationProtocol {
        buildApplication(configuration: configuration, client: database.makeClient(),
                         migrator: Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger),
                         logger: TestDatabase.logger, metrics: metrics)
    }
}
