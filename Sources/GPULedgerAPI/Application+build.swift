import GPULedgerCore
import GPULedgerStore
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle

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
    /// Who issues the chargeback, in FOCUS exports (BillingAccountId, BillingAccountName, InvoiceIssuerName).
    public var billingAccountID: String = "gpuledger"
    public var billingAccountName: String = "GPU inference fleet"
    /// How often the budget and pool gauges and the cost counter's price book of `/metrics` are
    /// reloaded; nil: never (tests refresh them themselves).
    public var budgetGaugeInterval: Duration? = .seconds(60)
    /// How often ingest's summary deltas are folded into the report summaries; nil: never (tests
    /// fold when they mean to; reports are exact either way).
    public var summaryFoldInterval: Duration? = .seconds(1)
    /// Where "now" comes from: the system clock in production, a fixed instant in tests.
    public var clock: WallClock = .system

    public init() {}
}

/// The routes, on the given stores. Tests build the same router.
public func buildRouter(configuration: AppConfiguration, database: Database, migrator: Migrator,
                        pricing: PricingState? = nil, planning: PlanningStore? = nil, metrics: AppMetrics) -> Router<AppRequestContext> {
    let pricing = pricing ?? PricingState(directory: configuration.pricingDirectory, accelerators: configuration.knownAccelerators)
    // One planning service (and so one forecast cache) for the API, the console and the gauges.
    let planning = planning ?? PlanningStore(database: database)
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: ClockMiddleware(clock: configuration.clock))
    router.add(middleware: RequestLogMiddleware())
    router.add(middleware: MetricsMiddleware(metrics: metrics))
    router.add(middleware: ErrorMiddleware())
    let routeMethods = RouteMethods()
    router.add(middleware: MethodNotAllowedMiddleware(routes: routeMethods))
    HealthController(database: database, migrator: migrator).addRoutes(to: router)
    OpenAPIController().addRoutes(to: router)
    router.get("metrics") { _, _ -> Response in
        metrics.observe(database.stats)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
    }
    let keys = KeyStore(database: database)
    ConsoleController(keys: keys, sessions: SessionStore(database: database), costs: CostStore(database: database),
                      budgets: BudgetStore(database: database), planning: planning,
                      stats: StatsStore(database: database), metrics: metrics,
                      configuration: configuration).addRoutes(to: router)
    let v1 = router.group("v1").add(middleware: AuthMiddleware(keys: keys))
    UsageController(usage: UsageStore(database: database), rates: RateStore(database: database), pricing: pricing,
                    configuration: configuration, metrics: metrics).addRoutes(to: v1)
    RatesController(rates: RateStore(database: database), pricing: pricing).addRoutes(to: v1)
    PoolsController(pools: PoolStore(database: database)).addRoutes(to: v1)
    CostsController(costs: CostStore(database: database), configuration: configuration).addRoutes(to: v1)
    StatsController(stats: StatsStore(database: database)).addRoutes(to: v1)
    PlanningController(budgets: BudgetStore(database: database), planning: planning).addRoutes(to: v1)
    routeMethods.set(router.routes)
    return router
}

/// The whole service on a `PostgresClient` that the application runs as one of its services.
/// Before the server starts it migrates the database and, on a database without keys, creates
/// the first admin key in `<data-dir>/admin.key`.
public func buildApplication(
    configuration: AppConfiguration, client: PostgresClient, migrator: Migrator, logger: Logger, metrics: AppMetrics = AppMetrics()
) -> some ApplicationProtocol {
    let database = Database(client: client, logger: logger, acquireTimeout: configuration.databaseAcquireTimeout)
    let pricing = PricingState(directory: configuration.pricingDirectory, accelerators: configuration.knownAccelerators)
    let planning = PlanningStore(database: database)
    let router = buildRouter(configuration: configuration, database: database, migrator: migrator, pricing: pricing, planning: planning, metrics: metrics)
    var services: [any Service] = [client]
    if let interval = configuration.summaryFoldInterval {
        services.append(SummaryFoldService(database: database, metrics: metrics, interval: interval, logger: logger))
    }
    if let interval = configuration.budgetGaugeInterval {
        services.append(MetricsRefreshService(database: database, planning: planning, metrics: metrics, clock: configuration.clock, interval: interval, logger: logger))
    }
    var app = Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "gpuledger"),
        services: services,
        logger: logger
    )
    let dataDirectory = configuration.dataDirectory
    let migrate = configuration.migrateOnStart
    // Starting up waits longer for the database than a request does: a service started beside its
    // database (or on a busy machine) should come up, not fail, while the database gets ready.
    var startup = database
    startup.acquireTimeout = max(database.acquireTimeout, .seconds(60))
    app.beforeServerStarts { [startup] in
        let database = startup
        if migrate {
            let applied = try await migrator.migrate(database)
            if !applied.isEmpty { logger.info("migrations applied", metadata: ["versions": .string(applied.joined(separator: ","))]) }
        }
        // Rate cards into the rate history; refused files are logged and keep what they had.
        _ = try await pricing.load(into: RateStore(database: database), allOrNothing: false, logger: logger)
        metrics.setPriceBook(try await RateStore(database: database).priceBook())
        let file = dataDirectory + "/admin.key"
        if try await KeyStore(database: database).bootstrapAdminKey(file: file) != nil {
            logger.notice("no API keys existed: created the first admin key and wrote it to \(file) (mode 0600); it is not shown again")
        }
    }
    return app
}
