import GPULedgerCore

/// Everything the service is configured with (flags, then environment, then defaults).
public struct AppConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    /// Largest ingest body, in bytes (default 64 MiB).
    public var maxBodyBytes: Int = 64 * 1024 * 1024
    public var maxRecordsPerRequest: Int = 100_000
    /// Accelerator names ingest accepts; nil accepts any name. Set from the rate cards in
    /// `pricingDirectory` when the service starts and on reload.
    public var knownAccelerators: Set<String>?
    /// The rate-card folder (`--pricing`); nil: no rate cards.
    public var pricingDirectory: String?
    /// Where `admin.key` is written on first start.
    public var dataDirectory: String = ".gpuledger"
    /// Apply migrations before serving.
    public var migrateOnStart: Bool = true
    /// How long a request waits for a database connection before it is answered 503.
    public var databaseAcquireTimeout: Duration = .seconds(5)
    /// The longest a request's database call may run before it is answered 503 and its
    /// connection closed (`Database.callTimeout`); the background fold gets four times as long.
    public var databaseCallTimeout: Duration = .seconds(30)
    /// How long a read waits for a connection of the read replica (`DATABASE_READ_URL`) before
    /// it is skipped (for `replicaRetryAfter`) and the read goes to the primary.
    public var replicaAcquireTimeout: Duration = .seconds(1)
    /// How long reads skip a read replica that could not be reached before it is tried again.
    public var replicaRetryAfter: Duration = .seconds(5)
    /// The Prometheus that scrapes NVIDIA's dcgm-exporter (`--prometheus-url`): GPU hardware
    /// figures per pool next to the ledger's. nil: none (everything else works as without).
    public var prometheusURL: String?
    /// Who issues the chargeback, in FOCUS exports (BillingAccountId, BillingAccountName, InvoiceIssuerName).
    public var billingAccountID: String = "gpuledger"
    public var billingAccountName: String = "GPU inference fleet"
    /// How often the budget and pool gauges and the cost counter's price book of `/metrics` are
    /// reloaded; nil: never (tests refresh them themselves).
    public var budgetGaugeInterval: Duration? = .seconds(60)
    /// How often ingest's summary deltas are folded into the report summaries; nil: never (tests
    /// fold when they mean to; reports are exact either way).
    public var summaryFoldInterval: Duration? = .seconds(1)
    /// This replica's name in the background lease (sql/0015); nil: the host and pid.
    public var instanceName: String? = nil
    /// How long the background lease lasts unrenewed: a dead runner's jobs move to another
    /// replica within this (renewed every second).
    public var backgroundLeaseTTL: Duration = .seconds(5)
    /// Fallbacks for spans that lack gpuledger's attributes (`POST /v1/traces`; `serve --otlp-mapping`).
    public var otlpMapping = OTLPMapping()
    /// Where "now" comes from: the system clock in production, a fixed instant in tests.
    public var clock: WallClock = .system

    public init() {}
}
