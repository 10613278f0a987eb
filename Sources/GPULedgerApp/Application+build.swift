import GPULedgerAPI
import GPULedgerConsole
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle

/// The routes, on the given stores: the API's and the console's, siblings over the same stores
/// and one planning service. Tests build the same router.
public func buildRouter(configuration: AppConfiguration, database: Database, reads: Database? = nil, migrator: Migrator,
                        pricing: PricingState? = nil, planning: PlanningStore? = nil, metrics: AppMetrics,
                        caches: ReportCaches = ReportCaches(), ingestActivity: IngestActivity? = nil) -> Router<AppRequestContext> {
    let reads = reads ?? database
    let pricing = pricing ?? PricingState(directory: configuration.pricingDirectory, accelerators: configuration.knownAccelerators)
    // One planning service (and so one forecast cache) for the API, the console and the gauges.
    let planning = planning ?? PlanningStore(database: database)
    // Forecasts and budget statuses answered to clients read on the replica too, when there is one
    // (with their own forecast cache; the gauges keep the primary's).
    let readPlanning = reads.readsFromReplica ? PlanningStore(database: reads) : planning
    let router = Router(context: AppRequestContext.self)
    // The server span of each request (the caller's traceparent taken in), returned in the answer.
    router.add(middleware: RequestTracingMiddleware())
    router.add(middleware: TraceparentMiddleware())
    router.add(middleware: ClockMiddleware(clock: configuration.clock))
    router.add(middleware: RequestLogMiddleware())
    router.add(middleware: MetricsMiddleware(metrics: metrics))
    router.add(middleware: ErrorMiddleware())
    if reads.readsFromReplica { router.add(middleware: ReadSourceMiddleware()) }
    let routeMethods = RouteMethods()
    router.add(middleware: MethodNotAllowedMiddleware(routes: routeMethods))
    APIRoutes(configuration: configuration, database: database, reads: reads, migrator: migrator, pricing: pricing, planning: readPlanning,
              metrics: metrics, ingestActivity: ingestActivity).add(to: router)
    ConsoleController(keys: KeyStore(database: database), sessions: SessionStore(database: database), costs: CostStore(database: reads),
                      periods: PeriodStore(database: database),
                      budgets: BudgetStore(database: database), planning: readPlanning, pools: PoolStore(database: reads),
                      stats: StatsStore(database: reads),
                      caches: caches, configuration: configuration).addRoutes(to: router)
    routeMethods.set(router.routes)
    return router
}

/// The whole service on a `PostgresClient` that the application runs as one of its services.
/// Before the server starts it migrates the database and, on a database without keys, creates
/// the first admin key in `<data-dir>/admin.key`.
/// `readClient`: a hot standby's (`DATABASE_READ_URL`) for reports, stats and console pages.
/// `backgroundClient`: connections of the background jobs' own (the fold, the hour keeper, the
/// gauges), so that a burst of requests holding every connection of `client` cannot hold them
/// back; nil: `client`'s. `leaseClient`: the lease's renewal's own connection, so that neither
/// requests nor a long job can make it wait and hand the jobs to another replica; nil:
/// `backgroundClient`'s (else `client`'s).
public func buildApplication(
    configuration: AppConfiguration, client: PostgresClient, readClient: PostgresClient? = nil, backgroundClient: PostgresClient? = nil,
    leaseClient: PostgresClient? = nil,
    migrator: Migrator, logger: Logger, metrics: AppMetrics = AppMetrics(), caches: ReportCaches = ReportCaches(),
    services extra: [any Service] = []
) -> some ApplicationProtocol {
    let callTimeout = configuration.databaseCallTimeout
    let database = Database(client: client, logger: logger, acquireTimeout: configuration.databaseAcquireTimeout, callTimeout: callTimeout)
    let background = backgroundClient.map { Database(client: $0, logger: logger, acquireTimeout: .seconds(30), callTimeout: callTimeout * 4) }
        ?? database.limited(to: callTimeout * 4)
    // A replica that does not answer within a second (by default) is skipped for 5 s (reads go
    // to the primary).
    let reads = readClient.map {
        database.reading(from: ReadReplica(database: Database(client: $0, logger: logger, acquireTimeout: configuration.replicaAcquireTimeout,
                                                              callTimeout: callTimeout),
                                           retryAfter: configuration.replicaRetryAfter))
    }
    let pricing = PricingState(directory: configuration.pricingDirectory, accelerators: configuration.knownAccelerators)
    let planning = PlanningStore(database: database)
    // The fold waits while this process's ingest is busy (SummaryFoldService).
    let ingestActivity = IngestActivity()
    let router = buildRouter(configuration: configuration, database: database, reads: reads, migrator: migrator, pricing: pricing, planning: planning,
                             metrics: metrics, caches: caches, ingestActivity: ingestActivity)
    // The background jobs run on the replica that holds the background lease (one of any number
    // of `serve` processes on this database).
    let leadership = Leadership(holder: configuration.instanceName, ttl: configuration.backgroundLeaseTTL)
    var services: [any Service] = [client]
    if let readClient { services.append(readClient) }
    if let backgroundClient { services.append(backgroundClient) }
    if let leaseClient { services.append(leaseClient) }
    let leaseDatabase = leaseClient.map { Database(client: $0, logger: logger, acquireTimeout: leadership.ttl, callTimeout: leadership.ttl) } ?? background
    services += [LeaderElectionService(database: leaseDatabase, leadership: leadership, metrics: metrics, logger: logger)] as [any Service]
    if let interval = configuration.summaryFoldInterval {
        services.append(SummaryFoldService(database: background, leadership: leadership, metrics: metrics, interval: interval,
                                           ingestActivity: ingestActivity, logger: logger))
        services.append(HourSummaryService(database: background, leadership: leadership, clock: configuration.clock, interval: interval * 5,
                                           logger: logger))
    }
    if let interval = configuration.budgetGaugeInterval {
        services.append(MetricsRefreshService(database: background, planning: planning, leadership: leadership, metrics: metrics, caches: caches,
                                              clock: configuration.clock, interval: interval, prometheusURL: configuration.prometheusURL,
                                              logger: logger))
    }
    services += extra
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
    startup.callTimeout = nil // migrations on a large table may take long
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
