import Foundation

/// One priced piece of a period's bill, as the store computes it: a tenant's usage or idle share,
/// or a pool's unallocated idle, provisioned capacity or usage over capacity, for one pricing key
/// and rate segment. Amounts are exact to 20 decimal places (idle shares are ratios).
public struct ChargeItem: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case usage, idle, unallocated, provisioned, over }
    public var kind: Kind
    public var tenant: String?
    /// The registered pool; nil for usage priced at its accelerator's default rate.
    public var pool: String?
    public var accelerator: String
    public var provider: String?
    public var region: String?
    public var tier: String?
    /// nil: no rate covers it (unpriced).
    public var usdPerGPUHour: Decimal?
    /// The rate's segment [start, end) (nil end: still in force; nil start: a pool override).
    public var segmentStart: Timestamp?
    public var segmentEnd: Timestamp?
    /// Requests (usage), or pool-hours (over).
    public var requests: Int64
    public var errors: Int64
    public var gpuSeconds: Decimal
    public var inputTokens: Int64
    public var outputTokens: Int64
    /// nil when unpriced.
    public var costUSD: Decimal?
    /// A usage item in a pool that allocates by tokens: the GPU-seconds its token weight's share
    /// of each hour pays for (its own measured `gpuSeconds` may be 0). nil: any other item.
    public var tokenShareGPUSeconds: Decimal?

    public init(kind: Kind, tenant: String?, pool: String?, accelerator: String, provider: String?, region: String?, tier: String?,
                usdPerGPUHour: Decimal?, segmentStart: Timestamp?, segmentEnd: Timestamp?, requests: Int64, errors: Int64,
                gpuSeconds: Decimal, inputTokens: Int64, outputTokens: Int64, costUSD: Decimal?) {
        self.kind = kind
        self.tenant = tenant
        self.pool = pool
        self.accelerator = accelerator
        self.provider = provider
        self.region = region
        self.tier = tier
        self.usdPerGPUHour = usdPerGPUHour
        self.segmentStart = segmentStart
        self.segmentEnd = segmentEnd
        self.requests = requests
        self.errors = errors
        self.gpuSeconds = gpuSeconds
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.costUSD = costUSD
    }
}

/// A period's chargeback: per tenant and for the fleet, in cents that add up.
///
/// Codable: a closed month's invoice is this, stored as it was at the close (JSON keeps every
/// decimal exactly), and every format of it is rendered from that.
public struct Chargeback: Sendable, Codable {
    public struct TenantRow: Sendable, Equatable, Codable {
        public var tenant: String
        public var requests: Int64 = 0
        public var errors: Int64 = 0
        public var gpuSeconds: Decimal = 0
        public var inputTokens: Int64 = 0
        public var outputTokens: Int64 = 0
        public var unpricedGPUSeconds: Decimal = 0
        public var idleGPUSeconds: Decimal = 0
        /// Exact amounts (20 places) before rounding.
        public var usageExact: Decimal = 0
        public var idleExact: Decimal = 0
        /// Cents.
        public var usageCost: Decimal = 0
        public var idleCost: Decimal = 0
        /// Corrections of closed months billed in this one (contract section 5, "Closing a month").
        public var correctionCost: Decimal = 0
        public var totalCost: Decimal { usageCost + idleCost + correctionCost }

        /// A tenant with nothing billed.
        public init(tenant: String) { self.tenant = tenant }
    }

    public struct Fleet: Sendable, Equatable, Codable {
        public var provisionedCost: Decimal = 0
        public var provisionedGPUSeconds: Decimal = 0
        public var usageCost: Decimal = 0
        public var idleCost: Decimal = 0
        public var unallocatedIdleCost: Decimal = 0
        /// What was paid for: provisioned capacity of registered pools, usage outside them and
        /// usage over a pool's capacity; equals the tenants' totals plus unallocated idle.
        public var totalCost: Decimal = 0
        public var overCapacityGPUSeconds: Decimal = 0
        public var overCapacityCost: Decimal = 0
        public var overCapacityPoolHours: Int64 = 0
        public var unpricedGPUSeconds: Decimal = 0
        public var unpricedProvisionedGPUSeconds: Decimal = 0
        /// Corrections of closed months billed in this one (not in `totalCost`, which is what
        /// this month's capacity and usage cost).
        public var correctionCost: Decimal = 0
    }

    /// One line of the bill (a FOCUS row): an item with its cents.
    public struct Line: Sendable, Equatable, Codable {
        public var item: ChargeItem
        public var cost: Decimal
    }

    /// What the ledger says now of a closed month, less its invoice and the corrections of it
    /// billed already: billed in the first open month after it, per tenant (nil: the fleet's
    /// unallocated idle), in cents, either sign.
    public struct Correction: Sendable, Equatable, Codable {
        public var tenant: String?
        public var period: Period
        public var cost: Decimal
        public init(tenant: String?, period: Period, cost: Decimal) { self.tenant = tenant; self.period = period; self.cost = cost }
    }

    /// A closed month's invoice id and when it was closed.
    public struct Invoice: Sendable, Equatable, Codable {
        public var id: String
        public var closedAt: Timestamp
        public init(id: String, closedAt: Timestamp) { self.id = id; self.closedAt = closedAt }
    }

    public var period: Period
    public var tenants: [TenantRow]
    public var fleet: Fleet
    /// Usage, idle-share and unallocated-idle lines, priced, in cents; per tenant they add up to
    /// its total, and all of them to the fleet's total.
    public var lines: [Line]
    /// Corrections of closed months billed in this one, in tenant then month order.
    public var corrections: [Correction] = []
    /// Set when this month is closed: this is then its invoice.
    public var invoice: Invoice?

    /// Each tenant's own figure for the month (usage and idle cents, without the corrections
    /// of other months billed in it; nil: the unallocated idle), as a correction compares them.
    public var figures: [String?: Decimal] {
        var out: [String?: Decimal] = [:]
        for t in tenants where t.usageCost + t.idleCost != 0 { out[t.tenant] = t.usageCost + t.idleCost }
        if fleet.unallocatedIdleCost != 0 { out[nil] = fleet.unallocatedIdleCost }
        return out
    }

    /// This bill with `corrections` billed in it: each tenant's row gets its corrections (a
    /// tenant with corrections only gets a row of its own), the fleet their sum.
    public func billing(_ corrections: [Correction]) -> Chargeback {
        var bill = self
        bill.corrections = corrections.filter { $0.cost != 0 }
            .sorted { ($0.tenant ?? "\u{10FFFF}", $0.period) < ($1.tenant ?? "\u{10FFFF}", $1.period) }
        var rows = Dictionary(uniqueKeysWithValues: bill.tenants.map { ($0.tenant, $0) })
        for c in bill.corrections {
            bill.fleet.correctionCost += c.cost
            guard let t = c.tenant else { continue }
            rows[t, default: TenantRow(tenant: t)].correctionCost += c.cost
        }
        bill.tenants = rows.values.sorted { $0.tenant < $1.tenant }
        return bill
    }

    /// Rounds the exact items to cents once, at the end, so that everything adds up:
    /// the fleet's usage cents are its exact usage rounded, split over tenants by largest
    /// remainder; the fleet's idle cents are its total cents less its usage cents, split over the
    /// tenants' idle shares and the unallocated idle the same way; each tenant's cents are split
    /// over its lines again. Ties go to the larger amount, then to the earlier part (tenants in
    /// name order, unallocated idle last).
    public static func assemble(period: Period, items: [ChargeItem]) -> Chargeback {
        var byTenant: [String: TenantRow] = [:]
        var fleet = Fleet()
        var unallocatedExact: Decimal = 0
        for item in items {
            switch item.kind {
            case .usage, .idle:
                guard let tenant = item.tenant else { continue }
                var row = byTenant[tenant] ?? TenantRow(tenant: tenant)
                if item.kind == .usage {
                    row.requests += item.requests
                    row.errors += item.errors
                    row.gpuSeconds += item.gpuSeconds
                    row.inputTokens += item.inputTokens
                    row.outputTokens += item.outputTokens
                    if let c = item.costUSD { row.usageExact += c } else { row.unpricedGPUSeconds += item.gpuSeconds }
                } else {
                    row.idleGPUSeconds += item.gpuSeconds
                    if let c = item.costUSD { row.idleExact += c }
                }
                byTenant[tenant] = row
            case .unallocated:
                if let c = item.costUSD { unallocatedExact += c }
            case .provisioned:
                fleet.provisionedGPUSeconds += item.gpuSeconds
                if let c = item.costUSD { fleet.provisionedCost += c } else { fleet.unpricedProvisionedGPUSeconds += item.gpuSeconds }
            case .over:
                fleet.overCapacityGPUSeconds += item.gpuSeconds
                fleet.overCapacityPoolHours += item.requests
                if let c = item.costUSD { fleet.overCapacityCost += c }
            }
        }
        var tenants = byTenant.values.sorted { $0.tenant < $1.tenant }
        let usageExact = tenants.reduce(Decimal(0)) { $0 + $1.usageExact }
        let idleExact = tenants.reduce(Decimal(0)) { $0 + $1.idleExact } + unallocatedExact
        let totalCents = CentRounding.rounded(usageExact + idleExact, scale: 2, .plain)
        let usageCents = CentRounding.rounded(usageExact, scale: 2, .plain)
        let usageSplit = CentRounding.apportion(tenants.map(\.usageExact), target: usageCents)
        let idleSplit = CentRounding.apportion(tenants.map(\.idleExact) + [unallocatedExact], target: totalCents - usageCents)
        for i in tenants.indices {
            tenants[i].usageCost = usageSplit[i]
            tenants[i].idleCost = idleSplit[i]
            fleet.unpricedGPUSeconds += tenants[i].unpricedGPUSeconds
        }
        fleet.usageCost = usageCents
        fleet.idleCost = totalCents - usageCents
        fleet.unallocatedIdleCost = idleSplit.last ?? 0
        fleet.totalCost = totalCents
        fleet.provisionedCost = CentRounding.rounded(fleet.provisionedCost, scale: 2, .plain)
        fleet.overCapacityCost = CentRounding.rounded(fleet.overCapacityCost, scale: 2, .plain)

        // Lines: each tenant's usage and idle cents split over its items; unallocated likewise.
        var lines: [Line] = []
        func split(_ parts: [ChargeItem], _ cents: Decimal) {
            let priced = parts.filter { $0.costUSD != nil }
            let amounts = CentRounding.apportion(priced.map { $0.costUSD! }, target: cents)
            for (item, cost) in zip(priced, amounts) { lines.append(Line(item: item, cost: cost)) }
        }
        // Items in line order, grouped by tenant and kind (keys built once: a comparator that
        // built them per comparison took tens of milliseconds for a month of a real fleet).
        var groups: [String: [ChargeItem]] = [:]
        for (item, _) in items.map({ ($0, Self.lineKey($0)) }).sorted(by: { Self.precedes($0.1, $1.1) }) {
            groups[(item.tenant ?? "") + "\u{0}" + item.kind.rawValue, default: []].append(item)
        }
        for t in tenants {
            split(groups[t.tenant + "\u{0}usage"] ?? [], t.usageCost)
            split(groups[t.tenant + "\u{0}idle"] ?? [], t.idleCost)
        }
        split(groups["\u{0}unallocated"] ?? [], fleet.unallocatedIdleCost)
        return Chargeback(period: period, tenants: tenants, fleet: fleet, lines: lines)
    }

    /// Lines by tenant, kind, pool, accelerator, provider, region, tier, then rate segment.
    static func lineKey(_ i: ChargeItem) -> ([String], Int64) {
        ([i.tenant ?? "", i.kind.rawValue, i.pool ?? "", i.accelerator, i.provider ?? "", i.region ?? "", i.tier ?? ""],
         i.segmentStart?.microseconds ?? 0)
    }

    static func precedes(_ a: ([String], Int64), _ b: ([String], Int64)) -> Bool {
        a.0 == b.0 ? a.1 < b.1 : a.0.lexicographicallyPrecedes(b.0)
    }
}
