import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import GPULedgerTelemetry
import Hummingbird
import Tracing

/// `GET /v1/costs`, `GET /v1/chargeback`.
struct CostsController {
    let costs: CostStore
    let periods: PeriodStore
    let configuration: AppConfiguration
    /// With `--prometheus-url`: the pools' hardware figures in the chargeback's fleet block.
    var hardware: PoolHardware? = nil

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("costs", use: costReport)
        group.get("chargeback", use: chargeback)
    }

    // MARK: - /v1/costs

    @Sendable func costReport(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let params = try Query(request, allowed: ["from", "to", "group_by", "tenant", "model", "accelerator", "pool", "format"])
        let csv = try params.wantsCSV(request, allowed: ["json", "csv"])
        let (from, to) = try params.range(now: context.now)
        let groupBy = try params.get("group_by").map(GroupKey.parseList) ?? []
        let tenant = try Scope.tenant(principal, asked: params.get("tenant"), log: context.logFields)
        var query = CostQuery(from: from, to: to, groupBy: groupBy, tenant: tenant, model: params.get("model"),
                              accelerator: params.get("accelerator"), pool: params.get("pool"))
        query.now = context.now
        let report = try await withSpan("report costs", ofKind: .internal) { _ in try await costs.costs(query) }
        let names = groupBy.map(\.description)
        if csv {
            var text = CSVText.line(names + CostAnswer.metricNames)
            for row in report.rows { text += CSVText.line(row.group.map { $0 ?? "" } + CostAnswer.metrics(row)) }
            return CSVResponse.make(text, filename: "costs.csv")
        }
        return try JSONResponse.make(CostAnswer(
            from: from.rfc3339, to: to.rfc3339, group_by: names,
            rows: report.rows.map { CostAnswer.Row(names: names, row: $0) },
            total: CostAnswer.Row(names: [], row: report.total)))
    }

    struct CostAnswer: Encodable {
        var from: String
        var to: String
        var group_by: [String]
        var rows: [Row]
        var total: Row

        static let metricNames = ["requests", "errors", "gpu_seconds", "input_tokens", "output_tokens", "cost_usd",
                                  "cost_per_request_usd", "cost_per_1m_tokens_usd", "unpriced_gpu_seconds"]

        static func metrics(_ r: CostRow) -> [String] {
            [String(r.requests), String(r.errors), r.gpuSeconds, String(r.inputTokens), String(r.outputTokens), r.costUSD,
             r.costPerRequestUSD ?? "", r.costPer1MTokensUSD ?? "", r.unpricedGPUSeconds]
        }

        /// A row: its group fields by name, then the figures. Money as strings; GPU-seconds as
        /// exact JSON numbers.
        struct Row: Encodable {
            var names: [String]
            var row: CostRow

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: DynamicKey.self)
                for (name, value) in zip(names, row.group) { try c.encode(value, forKey: DynamicKey(name)) }
                try c.encode(row.requests, forKey: "requests")
                try c.encode(row.errors, forKey: "errors")
                try c.encode(CentRounding.decimal(row.gpuSeconds) ?? 0, forKey: "gpu_seconds")
                try c.encode(row.inputTokens, forKey: "input_tokens")
                try c.encode(row.outputTokens, forKey: "output_tokens")
                try c.encode(row.costUSD, forKey: "cost_usd")
                try c.encode(row.costPerRequestUSD, forKey: "cost_per_request_usd")
                try c.encode(row.costPer1MTokensUSD, forKey: "cost_per_1m_tokens_usd")
                try c.encode(CentRounding.decimal(row.unpricedGPUSeconds) ?? 0, forKey: "unpriced_gpu_seconds")
            }
        }
    }

    // MARK: - /v1/chargeback

    @Sendable func chargeback(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let params = try Query(request, allowed: ["period", "format", "tenant"])
        let format = params.get("format") ?? (params.acceptsCSV(request) ? "csv" : "json")
        guard ["json", "csv", "focus"].contains(format) else {
            throw AppError.badRequest("format=\(format) is not one of json, csv, focus", code: "bad_query")
        }
        let period = try params.period(now: context.now)
        let scope = try Scope.tenant(principal, asked: params.get("tenant"), log: context.logFields)
        let bill = try await periods.chargeback(period: period, tenant: scope, now: context.now)
        // A tenant key sees its own rows only: the fleet's figures describe other tenants too.
        let showFleet = Access.seesTheFleet(principal)
        switch format {
        case "focus", "csv":
            return ChargebackAnswer.download(bill, format: format, configuration: configuration)
        default:
            var answer = ChargebackAnswer(bill, period: period, showFleet: showFleet)
            if showFleet, let hardware {
                answer.addHardware(try await Self.hardware(hardware, period: period, now: context.now))
            }
            return try JSONResponse.make(answer)
        }
    }

    /// Each pool the month paid capacity for: paid, records' and hardware GPU-hours over the
    /// month so far, and the allocated-but-idle cost.
    static func hardware(_ hardware: PoolHardware, period: Period, now: Timestamp) async throws -> [PoolHardwareAnswer] {
        try await hardware.rows(from: period.start, to: period.end, now: now).map { r in
            PoolHardwareAnswer(pool: r.pool, paidGPUSeconds: r.paidGPUSeconds, ledgerGPUSeconds: r.ledgerGPUSeconds,
                               busyGPUSeconds: r.busyGPUSeconds, idleAllocatedCost: r.idleAllocatedCost,
                               utilization: r.figures?.utilization, gpus: r.figures?.gpus, note: r.note)
        }
    }
}
