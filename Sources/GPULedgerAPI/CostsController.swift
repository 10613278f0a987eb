import Foundation
import GPULedgerCore
import GPULedgerStore
import Hummingbird

/// `GET /v1/costs`, `GET /v1/chargeback`.
struct CostsController {
    let costs: CostStore
    let configuration: AppConfiguration

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
        let groupBy: [GroupKey]
        do { groupBy = try params.get("group_by").map(GroupKey.parseList) ?? [] } catch { throw AppError.badRequest(error.message, code: "bad_query") }
        let tenant = try Scope.tenant(principal, asked: params.get("tenant"), log: context.logFields)
        let report = try await costs.costs(CostQuery(from: from, to: to, groupBy: groupBy, tenant: tenant, model: params.get("model"),
                                                    accelerator: params.get("accelerator"), pool: params.get("pool")))
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
        let bill = try await costs.bill(period: period, tenant: scope, now: context.now)
        // A tenant key sees its own rows only: the fleet's figures describe other tenants too.
        let showFleet = principal.role == .admin || principal.role == .finance
        switch format {
        case "focus", "csv":
            return Self.export(bill, format: format, configuration: configuration)
        default:
            return try JSONResponse.make(ChargebackAnswer(
                period: period.description, period_start: period.start.rfc3339, period_end: period.end.rfc3339, currency: "USD",
                rows: bill.tenants.map(ChargebackAnswer.Row.init), fleet: showFleet ? ChargebackAnswer.FleetAnswer(bill.fleet) : nil))
        }
    }


    /// The bill as a CSV download: `csv` (a row per tenant) or `focus` (FinOps FOCUS lines).
    static func export(_ bill: Chargeback, format: String, configuration: AppConfiguration) -> Response {
        if format == "focus" {
            let text = FOCUSExport.csv(bill, billingAccountID: configuration.billingAccountID, billingAccountName: configuration.billingAccountName)
            return CSVResponse.make(text, filename: "focus-\(bill.period).csv")
        }
        var text = CSVText.line(ChargebackAnswer.csvColumns)
        for t in bill.tenants { text += CSVText.line(ChargebackAnswer.Row(t).csvFields) }
        return CSVResponse.make(text, filename: "chargeback-\(bill.period).csv")
    }

    struct ChargebackAnswer: Encodable {
        var period, period_start, period_end, currency: String
        var rows: [Row]
        var fleet: FleetAnswer?

        static let csvColumns = ["tenant", "requests", "errors", "gpu_seconds", "input_tokens", "output_tokens", "usage_cost_usd",
                                 "idle_cost_usd", "total_cost_usd", "idle_gpu_seconds", "unpriced_gpu_seconds"]

        struct Row: Encodable {
            var tenant: String
            var requests, errors: Int64
            var gpu_seconds: Decimal
            var input_tokens, output_tokens: Int64
            var usage_cost_usd, idle_cost_usd, total_cost_usd: String
            var idle_gpu_seconds: Decimal
            var unpriced_gpu_seconds: Decimal

            init(_ t: Chargeback.TenantRow) {
                tenant = t.tenant
                requests = t.requests
                errors = t.errors
                gpu_seconds = t.gpuSeconds
                input_tokens = t.inputTokens
                output_tokens = t.outputTokens
                usage_cost_usd = CentRounding.cents(t.usageCost)
                idle_cost_usd = CentRounding.cents(t.idleCost)
                total_cost_usd = CentRounding.cents(t.totalCost)
                idle_gpu_seconds = CentRounding.rounded(t.idleGPUSeconds, scale: 6, .plain)
                unpriced_gpu_seconds = t.unpricedGPUSeconds
            }

            var csvFields: [String] {
                [tenant, String(requests), String(errors), FOCUSExport.plain(gpu_seconds), String(input_tokens), String(output_tokens),
                 usage_cost_usd, idle_cost_usd, total_cost_usd, FOCUSExport.plain(idle_gpu_seconds), FOCUSExport.plain(unpriced_gpu_seconds)]
            }
        }

        struct FleetAnswer: Encodable {
            struct Over: Encodable { var gpu_seconds: Decimal; var cost_usd: String; var pool_hours: Int64 }
            var provisioned_cost_usd, usage_cost_usd, idle_cost_usd, unallocated_idle_cost_usd, total_cost_usd: String
            var provisioned_gpu_seconds: Decimal
            var over_capacity: Over
            var unpriced_gpu_seconds: Decimal
            var unpriced_provisioned_gpu_seconds: Decimal

            init(_ f: Chargeback.Fleet) {
                provisioned_cost_usd = CentRounding.cents(f.provisionedCost)
                usage_cost_usd = CentRounding.cents(f.usageCost)
                idle_cost_usd = CentRounding.cents(f.idleCost)
                unallocated_idle_cost_usd = CentRounding.cents(f.unallocatedIdleCost)
                total_cost_usd = CentRounding.cents(f.totalCost)
                provisioned_gpu_seconds = f.provisionedGPUSeconds
                over_capacity = Over(gpu_seconds: f.overCapacityGPUSeconds, cost_usd: CentRounding.cents(f.overCapacityCost),
                                     pool_hours: f.overCapacityPoolHours)
                unpriced_gpu_seconds = f.unpricedGPUSeconds
                unpriced_provisioned_gpu_seconds = f.unpricedProvisionedGPUSeconds
            }
        }
    }
}

struct DynamicKey: CodingKey, ExpressibleByStringLiteral {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init(stringLiteral s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Which tenant a read is limited to: a tenant key to its own (naming another is 403); an
/// ingest key may not read; admin and finance read what they ask for.
enum Scope {
    /// The tenant a report is limited to (nil: all), also put in the request's log line.
    static func tenant(_ principal: Principal, asked: String?, log: LogFields) throws -> String? {
        let tenant = try tenant(principal, asked: asked)
        if let tenant { log["tenant"] = tenant }
        return tenant
    }

    static func tenant(_ principal: Principal, asked: String?) throws -> String? {
        switch principal.role {
        case .admin, .finance: return asked
        case .tenant:
            if let asked, asked != principal.tenant {
                throw AppError.forbidden("this key reads only tenant \(principal.tenant ?? "")")
            }
            return principal.tenant
        case .ingest:
            throw AppError.forbidden("an ingest key writes usage; it cannot read reports")
        }
    }
}


enum CSVResponse {
    static func make(_ text: String, filename: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"\(filename)\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
