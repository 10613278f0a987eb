import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import GPULedgerTelemetry
import Hummingbird

/// The API's routes on one database: health, `/openapi.yaml`, `/metrics` and everything under
/// `/v1` (behind `AuthMiddleware`).
public struct APIRoutes {
    let configuration: AppConfiguration
    let database: Database
    /// Reports and stats read through this (a read replica's reads; else `database`).
    let reads: Database
    let migrator: Migrator
    let pricing: PricingState
    let planning: PlanningStore
    let metrics: AppMetrics
    /// Told of every ingest batch (the fold waits while batches come in).
    let ingestActivity: IngestActivity?

    public init(configuration: AppConfiguration, database: Database, reads: Database? = nil, migrator: Migrator, pricing: PricingState,
                planning: PlanningStore, metrics: AppMetrics, ingestActivity: IngestActivity? = nil) {
        self.ingestActivity = ingestActivity
        self.configuration = configuration
        self.database = database
        self.reads = reads ?? database
        self.migrator = migrator
        self.pricing = pricing
        self.planning = planning
        self.metrics = metrics
    }

    public func add(to router: Router<AppRequestContext>) {
        let database = database, metrics = metrics, reads = reads
        HealthController(database: database, migrator: migrator).addRoutes(to: router)
        OpenAPIController().addRoutes(to: router)
        router.get("metrics") { _, _ -> Response in
            metrics.observe(database.stats)
            if let replica = reads.readReplica { metrics.observe(replica) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        let v1 = router.group("v1").add(middleware: AuthMiddleware(keys: KeyStore(database: database)))
        let usage = UsageStore(database: database, activity: ingestActivity)
        UsageController(usage: usage, pools: PoolStore(database: database), rates: RateStore(database: database), pricing: pricing,
                        configuration: configuration, metrics: metrics).addRoutes(to: v1)
        TracesController(usage: usage, pools: PoolStore(database: database), pricing: pricing,
                         configuration: configuration, metrics: metrics).addRoutes(to: v1)
        RatesController(rates: RateStore(database: database), pricing: pricing).addRoutes(to: v1)
        PoolsController(pools: PoolStore(database: database)).addRoutes(to: v1)
        let hardware = configuration.prometheusURL.map { PoolHardware(stats: StatsStore(database: reads), prometheusURL: $0) }
        CostsController(costs: CostStore(database: reads), periods: PeriodStore(database: reads), configuration: configuration,
                        hardware: hardware).addRoutes(to: v1)
        PeriodsController(periods: PeriodStore(database: database), configuration: configuration).addRoutes(to: v1)
        StatsController(stats: StatsStore(database: reads), hardware: hardware).addRoutes(to: v1)
        PlanningController(budgets: BudgetStore(database: database), planning: planning).addRoutes(to: v1)
    }
}
