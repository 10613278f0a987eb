import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

/// A closed month: its invoice id and total.
public struct ClosedPeriod: Sendable, Equatable {
    public var period: Period
    public var invoiceID: String
    public var closedAt: Timestamp
    public var closedBy: String
    /// The invoice's total: every tenant's cents, the unallocated idle and the corrections billed in it.
    public var totalCost: Decimal
}

/// Closed months and their invoices (contract section 5, "Closing a month"), and the one rule
/// of what a month's chargeback is: a closed month's stored invoice, whatever arrived since;
/// an open month's bill from the ledger, with the corrections of the closed months before it.
///
/// Corrections: a closed month C is corrected in the first open month after it (the month after
/// the run of closed months that C starts). There, per tenant (and for the unallocated idle),
/// the correction is what the ledger says of C now, less C's invoice, less the corrections of C
/// that closed months after C have billed already. So the invoice plus every correction of it is
/// the ledger, to the cent, always; and a record that races a close lands in the invoice or in a
/// correction, never in both and never in neither (the correction is a difference).
public struct PeriodStore: Sendable {
    let db: Database
    let costs: CostStore
    var logger: Logger { db.logger }

    public init(database: Database) {
        self.db = database
        self.costs = CostStore(database: database)
    }

    struct Stored: Sendable {
        var closed: ClosedPeriod
        var figures: [String?: Decimal]
        var corrections: [Chargeback.Correction]
    }

    /// Every closed month, oldest first.
    public func closed() async throws -> [ClosedPeriod] {
        try await stored().map(\.closed)
    }

    func stored() async throws -> [Stored] {
        let logger = self.logger
        return try await db.withConnection { conn in
            var out: [Stored] = []
            let rows = try await conn.query("""
                SELECT period, invoice_id, (extract(epoch FROM closed_at) * 1000000)::bigint, closed_by, total_cost::text,
                       figures::text, corrections::text
                FROM closed_periods ORDER BY period
                """, logger: logger)
            for try await (p, id, at, by, total, figures, corrections) in rows.decode((String, String, Int64, String, String, String, String).self) {
                guard let period = Period.parse(p) else { continue }
                let f = try JSONDecoder().decode([String: Decimal].self, from: Data(figures.utf8))
                out.append(Stored(
                    closed: ClosedPeriod(period: period, invoiceID: id, closedAt: Timestamp(microseconds: at), closedBy: by,
                                         totalCost: CentRounding.decimal(total) ?? 0),
                    figures: Dictionary(uniqueKeysWithValues: f.map { ($0.key.isEmpty ? nil : $0.key, $0.value) }),
                    corrections: try JSONDecoder().decode([Chargeback.Correction].self, from: Data(corrections.utf8))))
            }
            return out
        }
    }

    /// The stored invoice of a closed month; nil while the month is open.
    public func invoice(_ period: Period) async throws -> Chargeback? {
        let logger = self.logger
        let key = period.description
        return try await db.withConnection { conn in
            for try await text in try await conn.query("SELECT invoice::text FROM closed_periods WHERE period = \(key)", logger: logger)
                .decode(String.self) {
                return try JSONDecoder().decode(Chargeback.self, from: Data(text.utf8))
            }
            return nil
        }
    }

    /// A month's chargeback as every reader sees it (only `tenant`'s rows, lines and corrections
    /// when set): the stored invoice of a closed month, else the ledger's bill as of `now` with
    /// the corrections of the closed months it is the first open month after.
    public func chargeback(period: Period, tenant: String?, now: Timestamp) async throws -> Chargeback {
        var bill: Chargeback
        if let frozen = try await invoice(period) {
            bill = frozen
        } else {
            // One tenant's: its own items and the others' sums (the same cents, `CostStore.bill`).
            bill = try await costs.bill(period: period, tenant: tenant, now: now)
                .billing(try await corrections(billedIn: period, now: now, closed: try await stored()))
        }
        if let tenant {
            bill.tenants = bill.tenants.filter { $0.tenant == tenant }
            bill.lines = bill.lines.filter { $0.item.tenant == tenant }
            bill.corrections = bill.corrections.filter { $0.tenant == tenant }
        }
        return bill
    }

    /// The corrections billed in the open month `m`: of each closed month in the run of closed
    /// months right before it.
    func corrections(billedIn m: Period, now: Timestamp, closed list: [Stored]) async throws -> [Chargeback.Correction] {
        let closed = Dictionary(uniqueKeysWithValues: list.map { ($0.closed.period, $0) })
        var out: [Chargeback.Correction] = []
        var c = m.previous
        while let entry = closed[c] {
            let ledger = try await costs.figures(period: c, now: now)
            var billed = entry.figures
            var p = c.next
            while p < m {
                for k in closed[p]?.corrections ?? [] where k.period == c { billed[k.tenant, default: 0] += k.cost }
                p = p.next
            }
            for key in Set(ledger.keys).union(billed.keys) {
                let difference = (ledger[key] ?? 0) - (billed[key] ?? 0)
                if difference != 0 { out.append(Chargeback.Correction(tenant: key, period: c, cost: difference)) }
            }
            c = c.previous
        }
        return out
    }

    public enum CloseError: Error, Sendable {
        /// The month is closed already, with this invoice id.
        case alreadyClosed(String)
    }

    /// Closes a finished month: its chargeback as of `now` (with the corrections it bills)
    /// stored as its invoice. Two closes racing: one wins, the other gets `alreadyClosed`.
    public func close(_ period: Period, now: Timestamp, by: String, invoicePrefix: String) async throws -> ClosedPeriod {
        let list = try await stored()
        if let done = list.first(where: { $0.closed.period == period }) { throw CloseError.alreadyClosed(done.closed.invoiceID) }
        var bill = try await costs.bill(period: period, tenant: nil, now: now)
            .billing(try await corrections(billedIn: period, now: now, closed: list))
        var random = SystemRandomNumberGenerator()
        let id = "\(invoicePrefix)-\(period)-" + String(format: "%08x", UInt32.random(in: .min ... .max, using: &random))
        bill.invoice = Chargeback.Invoice(id: id, closedAt: now)
        let total = bill.tenants.reduce(Decimal(0)) { $0 + $1.totalCost } + bill.fleet.unallocatedIdleCost
            + bill.corrections.filter { $0.tenant == nil }.reduce(Decimal(0)) { $0 + $1.cost }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let invoice = String(decoding: try encoder.encode(bill), as: UTF8.self)
        let figures = String(decoding: try encoder.encode(Dictionary(uniqueKeysWithValues: bill.figures.map { ($0.key ?? "", $0.value) })), as: UTF8.self)
        let corrections = String(decoding: try encoder.encode(bill.corrections), as: UTF8.self)
        let key = period.description, totalText = "\(total)", at = now.rfc3339
        let logger = self.logger
        do {
            _ = try await db.withConnection { conn in
                try await conn.query("""
                    INSERT INTO closed_periods (period, invoice_id, closed_at, closed_by, total_cost, figures, corrections, invoice)
                    VALUES (\(key), \(id), \(at)::timestamptz, \(by), \(totalText)::numeric,
                            \(figures)::json, \(corrections)::json, \(invoice)::json)
                    """, logger: logger)
            }
        } catch {
            if let e = StoreError.from(error) as? StoreError, e.isUniqueViolation {
                throw CloseError.alreadyClosed(try await closed().first { $0.period == period }?.invoiceID ?? "")
            }
            throw error
        }
        logger.notice("month closed", metadata: ["period": "\(period)", "invoice_id": "\(id)", "total_cost_usd": "\(total)", "by": "\(by)"])
        return ClosedPeriod(period: period, invoiceID: id, closedAt: now, closedBy: by, totalCost: total)
    }

    /// Withdraws a closed month's invoice (an operator's command, not the API): the invoice moves
    /// to the audit trail `period_reopenings` with `reason`, and the month is open again.
    public func reopen(_ period: Period, reason: String) async throws -> Bool {
        let logger = self.logger
        let key = period.description
        return try await db.withTransaction { conn in
            try await conn.query("SELECT set_config('gpuledger.reopen_reason', \(reason), true)", logger: logger)
            var n = 0
            for try await _ in try await conn.query("DELETE FROM closed_periods WHERE period = \(key) RETURNING period", logger: logger)
                .decode(String.self) { n += 1 }
            return n > 0
        }
    }
}
