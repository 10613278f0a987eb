import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird

/// Budgets (`PUT`/`GET`/`DELETE /v1/budgets/{name}`, `GET /v1/budgets`, `GET /v1/budgets/{name}/status`)
/// and forecasts (`GET /v1/forecast/spend`, `GET /v1/forecast/capacity`).
struct PlanningController {
    let budgets: BudgetStore
    let planning: PlanningStore

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("budgets", use: list)
        group.get("budgets/:name", use: show)
        group.put("budgets/:name", use: put)
        group.delete("budgets/:name", use: delete)
        group.get("budgets/:name/status", use: status)
        group.get("forecast/spend", use: forecastSpend)
        group.get("forecast/capacity", use: forecastCapacity)
    }

    // MARK: - Budgets

    struct BudgetAnswer: Encodable {
        var name: String
        /// null: the whole fleet.
        var tenant: Nullable<String>
        var period: String
        var amount_usd: String
        var thresholds: [Decimal]
        var basis: String
        var status: StatusAnswer?

        init(_ b: Budget, status: BudgetStatus? = nil) {
            name = b.name; tenant = .init(b.tenant); period = b.period.rawValue; amount_usd = CentRounding.amount(b.amount)
            thresholds = b.thresholds; basis = b.basis.rawValue
            self.status = status.map(StatusAnswer.init)
        }

    }

    struct StatusAnswer: Encodable {
        struct Quantiles: Encodable { var p10, p50, p90: String }
        var name: String
        var tenant: Nullable<String>
        var period: String
        var basis: String
        /// The instant asked about (`GET /v1/budgets/{name}/status`); absent in a budget list.
        var at: String?
        var period_start: String
        var period_end: String
        var amount_usd: String
        var spent_usd: String
        var forecast_usd: Quantiles
        /// null: not within the period.
        var projected_exhaustion_date: Nullable<String>
        var state: String
        var thresholds_crossed: [Decimal]
        var method: String

        init(_ s: BudgetStatus) {
            name = s.budget.name; tenant = .init(s.budget.tenant); period = s.budget.period.rawValue; basis = s.budget.basis.rawValue
            period_start = s.periodStart.rfc3339; period_end = s.periodEnd.rfc3339
            amount_usd = CentRounding.amount(s.budget.amount)
            spent_usd = CentRounding.amount(s.spent)
            forecast_usd = Quantiles(p10: CentRounding.cents(s.forecastP10), p50: CentRounding.cents(s.forecastP50), p90: CentRounding.cents(s.forecastP90))
            projected_exhaustion_date = .init(s.projectedExhaustionDate)
            state = s.state.rawValue
            thresholds_crossed = s.thresholdsCrossed
            method = s.method
        }
    }

    /// Reads a budget the key may see: 404 when there is none, 403 when it is another tenant's
    /// (or the fleet's, for a tenant key).
    func visibleBudget(_ name: String, _ principal: Principal) async throws -> Budget {
        guard let budget = try await budgets.get(name) else { throw AppError.notFound("no budget \(name)") }
        try Access.requireVisible(budget, to: principal)
        return budget
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let params = try Query(request, allowed: ["tenant", "status", "at"])
        let tenant = try Scope.tenant(principal, asked: params.get("tenant"), log: context.logFields)
        let at = try params.time("at") ?? context.now
        let found = try await budgets.list(tenant: tenant)
        var statuses: [String: BudgetStatus] = [:]
        switch params.get("status") {
        case nil, "false": break
        case "true":
            for s in try await planning.statuses(found, at: at) { statuses[s.budget.name] = s }
        case let other?:
            throw AppError.badRequest("status=\(other) must be true or false", code: "bad_query")
        }
        struct ListAnswer: Encodable { var budgets: [BudgetAnswer] }
        return try JSONResponse.make(ListAnswer(budgets: found.map { BudgetAnswer($0, status: statuses[$0.name]) }))
    }

    @Sendable func show(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        _ = try Query(request, allowed: [])
        return try JSONResponse.make(BudgetAnswer(try await visibleBudget(try PathName.budget(context), principal)))
    }

    @Sendable func status(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let params = try Query(request, allowed: ["at"])
        let budget = try await visibleBudget(try PathName.budget(context), principal)
        let at = try params.time("at") ?? context.now
        guard let s = try await planning.statuses([budget], at: at).first else { throw AppError.notFound("no budget \(budget.name)") }
        var answer = StatusAnswer(s)
        answer.at = at.rfc3339
        return try JSONResponse.make(answer)
    }

    static func requireManager(_ context: AppRequestContext) throws {
        guard Access.seesTheFleet(try context.requirePrincipal()) else { throw AppError.forbidden("only an admin or finance key manages budgets") }
    }

    @Sendable func put(_ request: Request, context: AppRequestContext) async throws -> Response {
        try Self.requireManager(context)
        let name = try PathName.budget(context)
        let object = try await JSONBody.object(request)
        let budget = try Budget.parse(name: name, object)
        let created = try await budgets.put(budget)
        return try JSONResponse.make(BudgetAnswer(budget), status: created ? .created : .ok)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        try Self.requireManager(context)
        let name = try PathName.budget(context)
        guard try await budgets.delete(name) else { throw AppError.notFound("no budget \(name)") }
        return Response(status: .noContent)
    }

    // MARK: - Forecasts

    struct SpendAnswer: Encodable {
        struct Point: Encodable { var date, p50_usd, lower_usd, upper_usd: String }
        struct Total: Encodable { var p50_usd, lower_usd, upper_usd: String }
        var method: String
        var history_days: Int
        var as_of: String
        var tenant: String?
        var model: String?
        var horizon_days: Int
        var level: Double
        var points: [Point]
        var total: Total
    }

    @Sendable func forecastSpend(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let params = try Query(request, allowed: ["tenant", "model", "horizon_days", "level", "as_of"])
        let tenant = try Scope.tenant(principal, asked: params.get("tenant"), log: context.logFields)
        let horizon = try params.integer("horizon_days", default: 30, range: 1...366)
        let level = try params.fraction("level", default: 0.8, { $0 >= 0.5 && $0 <= 0.99 }, "a number from 0.5 to 0.99")
        let asOf = try params.time("as_of") ?? context.now
        let f = try await planning.forecastSpend(tenant: tenant, model: params.get("model"), horizon: horizon, level: level, asOf: asOf)
        return try JSONResponse.make(SpendAnswer(
            method: f.method, history_days: f.historyDays, as_of: asOf.rfc3339, tenant: tenant, model: params.get("model"),
            horizon_days: horizon, level: level,
            points: f.points.map { .init(date: $0.date, p50_usd: CentRounding.cents($0.p50), lower_usd: CentRounding.cents($0.lower), upper_usd: CentRounding.cents($0.upper)) },
            total: .init(p50_usd: CentRounding.cents(f.total.p50), lower_usd: CentRounding.cents(f.total.lower), upper_usd: CentRounding.cents(f.total.upper))))
    }

    struct CapacityAnswer: Encodable {
        /// One of pool and accelerator (the other left out).
        var pool: String?
        var accelerator: String?
        var model: Nullable<String>
        var as_of: String
        var horizon_days: Int
        var target_utilization: Double
        var current_gpus: Int
        var history_hours: Int
        var peak_busy_gpus: Double
        var forecast_peak_busy_gpus: Double
        var required_gpus: Int
        var usd_per_gpu_hour: Nullable<String>
        var plan_cost_usd: Nullable<String>
        var budget_usd: Nullable<String>
        var affordable_gpus: Nullable<Int>
        var fits_budget: Nullable<Bool>
        var output_tokens_per_gpu_second: [String: Double]
        var coverage: Double
        var days: [Day]
        var past_plans_held: Int
        var past_plans: Int
        /// Only with `accelerators=`.
        var accelerators: [Option]?
        var method: String

        struct Day: Encodable {
            var date: String
            var start: String
            var forecast_peak_busy_gpus: Double
            var required_gpus: Int
        }
        /// One accelerator type for the forecast demand; `required_gpus` and the cost are null
        /// for a type on which some model of the demand never ran.
        struct Option: Encodable {
            var accelerator: String
            var measured: Bool
            var output_tokens_per_gpu_second: [String: Double?]
            var busy_gpus: Nullable<Double>
            var required_gpus: Nullable<Int>
            var usd_per_gpu_hour: Nullable<String>
            var plan_cost_usd: Nullable<String>
        }
    }

    @Sendable func forecastCapacity(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard Access.seesTheFleet(principal) else {
            throw AppError.forbidden("capacity plans cover shared pools: only admin and finance keys read them")
        }
        let params = try Query(request, allowed: ["pool", "accelerator", "model", "horizon_days", "target_utilization", "coverage", "budget_usd",
                                                  "as_of", "accelerators"])
        let pool = params.get("pool"), accelerator = params.get("accelerator")
        guard (pool == nil) != (accelerator == nil) else {
            throw AppError.badRequest("give exactly one of pool= and accelerator=", code: "bad_query")
        }
        let (horizon, target, coverage, budget) = try params.capacityOptions()
        let compare = try Self.acceleratorList(params.get("accelerators"))
        let asOf = try params.time("as_of") ?? context.now
        guard let a = try await planning.capacity(.init(pool: pool, accelerator: accelerator, model: params.get("model"), horizonDays: horizon,
                                                        targetUtilization: target, coverage: coverage, budgetUSD: budget, asOf: asOf,
                                                        compare: compare)) else {
            throw AppError.notFound("no pool \(pool ?? ""); see GET /v1/pools")
        }
        func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
        return try JSONResponse.make(CapacityAnswer(
            pool: pool, accelerator: accelerator, model: .init(params.get("model")), as_of: asOf.rfc3339, horizon_days: horizon,
            target_utilization: target, current_gpus: a.currentGPUs, history_hours: a.plan.historyHours,
            peak_busy_gpus: round3(a.plan.peakBusyGPUs), forecast_peak_busy_gpus: round3(a.plan.forecastPeakBusyGPUs),
            required_gpus: a.plan.requiredGPUs, usd_per_gpu_hour: .init(a.usdPerGPUHour.map { "\($0)" }),
            plan_cost_usd: .init(a.plan.planCostUSD.map(CentRounding.cents)), budget_usd: .init(budget.map(CentRounding.amount)),
            affordable_gpus: .init(a.plan.affordableGPUs), fits_budget: .init(a.plan.fitsBudget),
            output_tokens_per_gpu_second: Dictionary(a.outputTokensPerGPUSecond.map { ($0.model, round3($0.value)) }, uniquingKeysWith: { x, _ in x }),
            coverage: coverage,
            days: a.plan.days.map { d in
                let start = a.planStart.adding(days: Int64(d.offset))
                return .init(date: String(start.rfc3339.prefix(10)), start: start.rfc3339, forecast_peak_busy_gpus: round3(d.forecastPeakBusyGPUs),
                             required_gpus: d.requiredGPUs)
            },
            past_plans_held: a.plan.pastPlansHeld, past_plans: a.plan.pastPlans,
            accelerators: a.options?.map { o in
                .init(accelerator: o.accelerator, measured: o.measured, output_tokens_per_gpu_second: o.outputTokensPerGPUSecond.mapValues { $0.map(round3) },
                      busy_gpus: .init(o.busyGPUs.map(round3)), required_gpus: .init(o.requiredGPUs), usd_per_gpu_hour: .init(o.usdPerGPUHour.map { "\($0)" }),
                      plan_cost_usd: .init(o.planCostUSD.map(CentRounding.cents)))
            },
            method: a.plan.method))
    }

    /// `accelerators=H100,A100-80GB` (each 1–64 characters, at most 32) or `accelerators=all`
    /// (every type with a default rate); nil when absent.
    static func acceleratorList(_ text: String?) throws -> [String]? {
        guard let text else { return nil }
        if text == "all" { return [] }
        let names = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard names.count <= 32, names.allSatisfy({ !$0.isEmpty && $0.count <= 64 }) else {
            throw AppError.badRequest("accelerators=\(text) must be all or a comma-separated list of up to 32 accelerator names", code: "bad_query")
        }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}
