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
        /// With GPU hardware telemetry on: each pool's month so far as paid for, as its records
        /// account for and as its hardware was busy (absent otherwise).
        var hardware: [PoolHardwareAnswer]?

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

/// One pool's GPU-hours three ways over a window (the chargeback's `fleet.hardware`), as
/// `/v1/stats`' `hardware` object has them; the figures are null with a `note` when missing.
public struct PoolHardwareAnswer: Encodable {
    public var pool: String
    public var paid_gpu_hours: Decimal
    public var ledger_gpu_hours: Double
    public var busy_gpu_hours: Nullable<Double>
    public var idle_allocated_gpu_hours: Nullable<Decimal>
    public var idle_allocated_cost_usd: Nullable<String>
    public var utilization: Nullable<Double>
    public var gpus: Nullable<Int>
    public var note: Nullable<String>

    public init(pool: String, paidGPUSeconds: Decimal, ledgerGPUSeconds: Double, busyGPUSeconds: Double?, idleAllocatedCost: Decimal?,
                utilization: Double?, gpus: Int?, note: String?) {
        func round(_ x: Double) -> Double { (x * 1e6).rounded() / 1e6 }
        self.pool = pool
        paid_gpu_hours = CentRounding.rounded(paidGPUSeconds / 3600, scale: 6, .plain)
        ledger_gpu_hours = round(ledgerGPUSeconds / 3600)
        busy_gpu_hours = .init(busyGPUSeconds.map { round($0 / 3600) })
        idle_allocated_gpu_hours = .init(busyGPUSeconds.map { CentRounding.rounded(max(0, paidGPUSeconds - Decimal($0)) / 3600, scale: 6, .plain) })
        idle_allocated_cost_usd = .init(idleAllocatedCost.map(CentRounding.cents))
        self.utilization = .init(utilization.map(round))
        self.gpus = .init(gpus)
        self.note = .init(note)
    }
}

extension ChargebackAnswer {
    /// Adds the pools' hardware figures to the fleet block (when it is shown).
    public mutating func addHardware(_ pools: [PoolHardwareAnswer]) {
        fleet?.hardware = pools
    }

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
