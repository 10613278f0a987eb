import ArgumentParser
import Foundation
import Metrics
import Prometheus
import GPULedgerAPI
import GPULedgerApp
import GPULedgerHTTP
import GPULedgerCore
import GPULedgerStore
import Hummingbird
import Logging
import PostgresNIO

/// Where the database is: `DATABASE_URL`, or the embedded cluster under `--data-dir`.
struct DatabaseOptions: ParsableArguments {
    @Option(help: "Folder of the embedded PostgreSQL cluster and admin.key (GPULEDGER_DATA_DIR, default ./.gpuledger).")
    var dataDir: String?

    var dataDirectory: String { dataDir ?? environment("GPULEDGER_DATA_DIR") ?? ".gpuledger" }

    /// Starts (or adopts) the embedded cluster when `DATABASE_URL` is unset; returns the client
    /// configuration and the cluster, if one is used.
    func resolve(logger: Logger) async throws -> (PostgresClient.Configuration, EmbeddedPostgres?, startedNow: Bool) {
        if let url = environment("DATABASE_URL") {
            var config = try DatabaseURL.configuration(from: url)
            config.applyServiceDefaults()
            return (config, nil, false)
        }
        let cluster = EmbeddedPostgres(dataDirectory: dataDirectory, logger: logger)
        let startedNow = try await cluster.start()
        var config = cluster.clientConfiguration()
        config.applyServiceDefaults()
        return (config, cluster, startedNow)
    }

    /// Runs `body` with a database, for one-shot commands; stops an embedded cluster it started.
    func withDatabase<T: Sendable>(logger: Logger, _ body: @escaping @Sendable (Database) async throws -> T) async throws -> T {
        let (config, cluster, startedNow) = try await resolve(logger: logger)
        defer { if startedNow { try? cluster?.stop() } }
        return try await Database.withClient(config, logger: logger, body)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the service (on the embedded PostgreSQL unless DATABASE_URL is set).")

    @Option(help: "Address to listen on (GPULEDGER_HOST, default 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on (GPULEDGER_PORT, default 8080).") var port: Int?
    @Option(help: "Folder of rate-card CSV files (GPULEDGER_PRICING, default ./pricing).") var pricing: String?
    @Option(help: "Largest ingest body in bytes (GPULEDGER_MAX_BODY_BYTES, default 67108864 = 64 MiB).") var maxBodyBytes: Int?
    @Option(help: "Billing account id in FOCUS exports (GPULEDGER_BILLING_ACCOUNT_ID, default gpuledger).") var billingAccountId: String?
    @Option(help: "Billing account name and invoice issuer in FOCUS exports (GPULEDGER_BILLING_ACCOUNT_NAME, default \"GPU inference fleet\").")
    var billingAccountName: String?
    @Option(help: "Distinct tenants, models or accelerators labelled in /metrics before the rest count as 'other' (GPULEDGER_METRICS_LABEL_CAP, default 200).")
    var metricsLabelCap: Int?
    @Option(help: "on: /metrics has usage, cost and latency series by tenant, model and accelerator; off: not (GPULEDGER_USAGE_METRICS, default on).")
    var usageMetrics: String?
    @Option(help: "Seconds between recomputations of the budget and pool gauges and the cost counter's prices in /metrics (GPULEDGER_BUDGET_GAUGE_INTERVAL, default 60).")
    var budgetGaugeInterval: Int?
    @Option(help: "JSON file of fallbacks for OpenTelemetry spans that lack gpuledger's attributes: pool, accelerator, model, tenant, tenant_attribute, by default and per key name (GPULEDGER_OTLP_MAPPING; README, \"Connect vLLM\").")
    var otlpMapping: String?
    @Option(help: "This replica's name in the background lease and background_runs (GPULEDGER_INSTANCE, default host-pid): with several serve processes on one database, the summary fold and the fleet's gauges run on one at a time.")
    var instance: String?
    @Option(help: "The Prometheus that scrapes NVIDIA's dcgm-exporter, e.g. http://prometheus:9090 (GPULEDGER_PROMETHEUS_URL): per pool, the GPUs' busy fraction, memory, power and temperature next to the ledger's figures, for pools with a gpu_selector (README, \"GPU hardware telemetry\").")
    var prometheusUrl: String?
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = log.bootstrap()
        // Once per process: swift-metrics (and what libraries record through it) into the same
        // registry /metrics serves.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let usageSeries = usageMetrics ?? environment("GPULEDGER_USAGE_METRICS") ?? "on"
        guard ["on", "off"].contains(usageSeries) else {
            throw ValidationError("--usage-metrics takes on or off, not \(usageSeries)")
        }
        let metrics = AppMetrics(registry: registry,
                                 labelCap: metricsLabelCap ?? environment("GPULEDGER_METRICS_LABEL_CAP").flatMap { Int($0) } ?? 200,
                                 usageSeries: usageSeries == "on")
        var config = AppConfiguration()
        config.host = host ?? environment("GPULEDGER_HOST") ?? "127.0.0.1"
        config.port = port ?? environment("GPULEDGER_PORT").flatMap { Int($0) } ?? 8080
        config.maxBodyBytes = maxBodyBytes ?? environment("GPULEDGER_MAX_BODY_BYTES").flatMap { Int($0) } ?? config.maxBodyBytes
        config.dataDirectory = database.dataDirectory
        config.billingAccountID = billingAccountId ?? environment("GPULEDGER_BILLING_ACCOUNT_ID") ?? config.billingAccountID
        config.billingAccountName = billingAccountName ?? environment("GPULEDGER_BILLING_ACCOUNT_NAME") ?? config.billingAccountName
        let gaugeSeconds = budgetGaugeInterval ?? environment("GPULEDGER_BUDGET_GAUGE_INTERVAL").flatMap { Int($0) } ?? 60
        config.budgetGaugeInterval = gaugeSeconds > 0 ? .seconds(gaugeSeconds) : nil
        config.instanceName = instance ?? environment("GPULEDGER_INSTANCE") ?? Leadership.defaultHolder
        if let seconds = environment("GPULEDGER_DB_ACQUIRE_TIMEOUT").flatMap(Double.init), seconds > 0 {
            config.databaseAcquireTimeout = .milliseconds(Int(seconds * 1000))
        }
        if let seconds = environment("GPULEDGER_DB_CALL_TIMEOUT").flatMap(Double.init), seconds > 0 {
            config.databaseCallTimeout = .milliseconds(Int(seconds * 1000))
        }
        if let url = prometheusUrl ?? environment("GPULEDGER_PROMETHEUS_URL"), !url.isEmpty {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw ValidationError("--prometheus-url \(url) is not an http:// or https:// address such as http://prometheus:9090")
            }
            config.prometheusURL = url
        }
        if let path = otlpMapping ?? environment("GPULEDGER_OTLP_MAPPING") {
            do { config.otlpMapping = try OTLPMapping.load(path: path) } catch let e as MappingError { throw ValidationError(e.description) }
        }
        let pricingDir = pricing ?? environment("GPULEDGER_PRICING") ?? "pricing"
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: pricingDir, isDirectory: &isDirectory), isDirectory.boolValue {
            config.pricingDirectory = pricingDir // loaded into the rate history before the server starts
        } else {
            logger.warning("no rate-card folder; every accelerator name is accepted and nothing is priced", metadata: ["pricing": "\(pricingDir)"])
        }
        let (clientConfig, cluster, _) = try await database.resolve(logger: logger)
        let client = PostgresClient(configuration: clientConfig, backgroundLogger: logger)
        // Reports, stats and console pages from a hot standby, when one is named.
        var readClient: PostgresClient?
        if let url = environment("DATABASE_READ_URL") {
            var readConfig = try DatabaseURL.configuration(from: url)
            readConfig.applyServiceDefaults()
            readClient = PostgresClient(configuration: readConfig, backgroundLogger: logger)
            logger.info("reports, stats and console pages read from the replica at DATABASE_READ_URL")
        }
        // The background jobs' own connections, one each for the fold's two parts (and its
        // vacuum), the hour keeper and the gauges; and one of its own for the lease's renewal,
        // which must never wait behind a job (it would lapse and move: in the fault drill, with
        // the lease in the jobs' pool of five, a renewal waited past the lease's 5 s once the
        // jobs' connections were all busy).
        var backgroundConfig = clientConfig
        backgroundConfig.options.maximumConnections = 5
        let backgroundClient = PostgresClient(configuration: backgroundConfig, backgroundLogger: logger)
        var leaseConfig = clientConfig
        leaseConfig.options.maximumConnections = 1
        let leaseClient = PostgresClient(configuration: leaseConfig, backgroundLogger: logger)
        // Tracing of the service itself, when OTEL_EXPORTER_OTLP_ENDPOINT names a collector.
        let tracing = try ServiceTracing.bootstrap(logger: logger)
        let app = buildApplication(configuration: config, client: client, readClient: readClient, backgroundClient: backgroundClient,
                                   leaseClient: leaseClient, migrator: Migrator(directory: Migrator.defaultDirectory(), logger: logger), logger: logger, metrics: metrics,
                                   services: tracing.map { [$0] } ?? [])
        do {
            try await app.runService()
        } catch {
            if let cluster { try? cluster.stop() }
            throw error
        }
        // The service owns the embedded cluster: it stops it on the way out (SIGINT/SIGTERM).
        if let cluster { try cluster.stop() }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the schema migrations in sql/ that are not applied yet.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = log.bootstrap()
        let migrator = Migrator(directory: Migrator.defaultDirectory(), logger: logger)
        let applied = try await database.withDatabase(logger: logger) { db in try await migrator.migrate(db) }
        print(applied.isEmpty ? "schema is up to date" : "applied \(applied.joined(separator: ", "))")
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage API keys.", subcommands: [Create.self, List.self, Revoke.self])

    /// Runs `body` with the key store on a migrated database, logging only warnings unless asked
    /// (these commands print their answer on stdout).
    static func withKeyStore<T: Sendable>(_ database: DatabaseOptions, _ log: LogOptions,
                                          _ body: @escaping @Sendable (KeyStore) async throws -> T) async throws -> T {
        var log = log
        if log.logLevel == nil { log.logLevel = environment("GPULEDGER_LOG_LEVEL") ?? "warning" }
        let logger = log.bootstrap()
        let migrator = Migrator(directory: Migrator.defaultDirectory(), logger: logger)
        return try await database.withDatabase(logger: logger) { db in
            try await migrator.migrate(db)
            return try await body(KeyStore(database: db))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the keys (never the secrets): id, role, tenant, name, prefix, created, revoked.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var log: LogOptions

        func run() async throws {
            let keys = try await Keys.withKeyStore(database, log) { store in try await store.list() }
            print("id\trole\ttenant\tname\tprefix\tcreated\trevoked")
            for k in keys {
                print("\(k.id)\t\(k.role)\t\(k.tenant ?? "-")\t\(k.name)\t\(k.prefix)…\t\(k.createdAt.rfc3339)\t\(k.revokedAt?.rfc3339 ?? "-")")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by its id (from keys list); it stops working at once.")
        @Argument(help: "The key's id.") var id: Int64
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var log: LogOptions

        func run() async throws {
            let id = self.id
            let found = try await Keys.withKeyStore(database, log) { store in try await store.revoke(id: id) }
            guard found else {
                note("no key #\(id)")
                throw ExitCode(1)
            }
            print("key #\(id) revoked")
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print it once on standard output (only its hash is stored).")
        @Option(help: "admin, finance, ingest or tenant.") var role: Role
        @Option(help: "Bind an ingest key to one tenant; required for a tenant key.") var tenant: String?
        @Option(help: "A name to recognise the key by.") var name: String?
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var log: LogOptions

        func run() async throws {
            let (role, tenant, name) = (self.role, self.tenant, self.name)
            do {
                let key = try await Keys.withKeyStore(database, log) { store in
                    try await store.create(role: role, tenant: tenant, name: name)
                }
                print(key.key)
                note("created \(role.rawValue) key #\(key.id) (\(key.prefix)…)\(tenant.map { " for tenant \($0)" } ?? ""); it is not shown again")
            } catch let error as KeyStore.KeyError {
                throw ValidationError(error.description)
            }
        }
    }
}

extension Role: ExpressibleByArgument {}

struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete usage records that started before a date (retention).",
        discussion: "Deletes in batches, so the service keeps ingesting meanwhile. Prints how many records were deleted.")

    @Option(help: "Delete records with started_at before this date or RFC 3339 time (UTC).") var before: String
    @Option(help: "Records per transaction.") var batch: Int = 50_000
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        guard Self.cutoff(before) != nil else { throw ValidationError("--before must be a date (2026-01-01) or an RFC 3339 time") }
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
    }

    static func cutoff(_ text: String) -> Timestamp? { Timestamp.parseDateOrTime(text) }

    func run() async throws {
        let logger = log.bootstrap()
        let cutoff = Self.cutoff(before)!
        let batch = self.batch
        let total = try await database.withDatabase(logger: logger) { db in
            let store = UsageStore(database: db)
            var total = 0
            while true {
                let n = try await store.deleteBatch(startedBefore: cutoff, limit: batch)
                total += n
                if n < batch { return total }
            }
        }
        print("deleted \(total) usage records that started before \(cutoff.rfc3339)")
    }
}
