import Foundation
import GPULedgerCore
import Hummingbird

/// A month's chargeback as the contract writes it: the JSON answer's shape, and the two CSV
/// downloads (a row per tenant; FinOps FOCUS lines) that the API and the console both serve.
public struct ChargebackAnswer: Encodable {
    var period, period_start, period_end, currency: String
    /// A closed month's invoice id and close time (null while the month is open).
    var invoice_id: Nullable<String>
    var closed_at: Nullable<String>
    var rows: [Row]
    var fleet: FleetAnswer?

    public static let csvColumns = ["tenant", "requests", "errors", "gpu_seconds", "input_tokens", "output_tokens", "usage_cost_usd",
                             "idle_cost_usd", "correction_cost_usd", "total_cost_usd", "idle_gpu_seconds", "unpriced_gpu_seconds"]

    struct Row: Encodable {
        var tenant: String
        var requests, errors: Int64
        var gpu_seconds: Decimal
        var input_tokens, output_tokens: Int64
        var usage_cost_usd, idle_cost_usd, correction_cost_usd, total_cost_usd: String
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
            correction_cost_usd = CentRounding.cents(t.correctionCost)
            total_cost_usd = CentRounding.cents(t.totalCost)
            idle_gpu_seconds = CentRounding.rounded(t.idleGPUSeconds, scale: 6, .plain)
            unpriced_gpu_seconds = t.unpricedGPUSeconds
        }

        var csvFields: [String] {
            [tenant, String(requests), String(errors), FOCUSExport.plain(gpu_seconds), String(input_tokens), String(output_tokens),
             usage_cost_usd, idle_cost_usd, correction_cost_usd, total_cost_usd, FOCUSExport.plain(idle_gpu_seconds), FOCUSExport.plain(unpriced_gpu_seconds)]
        }
    }

    struct FleetAnswer: Encodable {
        struct Over: Encodable { var gpu_seconds: Decimal; var cost_usd: String; var pool_hours: Int64 }
        var provisioned_cost_usd, usage_cost_usd, idle_cost_usd, unallocated_idle_cost_usd, total_cost_usd, correction_cost_usd: String
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
            correction_cost_usd = CentRounding.cents(f.correctionCost)
            provisioned_gpu_seconds = f.provisionedGPUSeconds
            over_capacity = Over(gpu_seconds: f.overCapacityGPUSeconds, cost_usd: CentRounding.cents(f.overCapacityCost),
                                 pool_hours: f.overCapacityPoolHours)
            unpriced_gpu_seconds = f.unpricedGPUSeconds
            unpriced_provisioned_gpu_seconds = f.unpricedProvisionedGPUSeconds
        }
    }
}

extension ChargebackAnswer {
    /// The JSON answer; `showFleet` false leaves the fleet block out (a tenant key's answer).
    public init(_ bill: Chargeback, period: Period, showFleet: Bool) {
        self.period = period.description
        period_start = period.start.rfc3339
        period_end = period.end.rfc3339
        currency = "USD"
        invoice_id = .init(bill.invoice?.id)
        closed_at = .init(bill.invoice?.closedAt.rfc3339)
        rows = bill.tenants.map(Row.init)
        fleet = showFleet ? FleetAnswer(bill.fleet) : nil
    }

    /// The bill as a CSV download: `csv` (a row per tenant) or `focus` (FinOps FOCUS lines).
    public static func download(_ bill: Chargeback, format: String, configuration: AppConfiguration) -> Response {
        if format == "focus" {
            let text = FOCUSExport.csv(bill, billingAccountID: configuration.billingAccountID, billingAccountName: configuration.billingAccountName)
            return CSVResponse.make(text, filename: "focus-\(bill.period).csv")
        }
        var text = CSVText.line(ChargebackAnswer.csvColumns)
        for t in bill.tenants { text += CSVText.line(ChargebackAnswer.Row(t).csvFields) }
        return CSVResponse.make(text, filename: "chargeback-\(bill.period).csv")
    }
}
