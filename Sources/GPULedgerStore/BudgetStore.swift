import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

/// Budget definitions (their spend is summed from the ledger by `PlanningStore`).
public struct BudgetStore: Sendable {
    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) { self.db = database }

    /// Creates or replaces a budget; true when it was created.
    @discardableResult
    public func put(_ b: Budget) async throws -> Bool {
        let logger = self.logger
        let amount = "\(b.amount)"
        let thresholds = "{" + b.thresholds.map { "\($0)" }.joined(separator: ",") + "}"
        return try await db.withConnection { conn in
            let rows = try await conn.query("""
                INSERT INTO budgets (name, tenant, period, amount_usd, thresholds, basis)
                VALUES (\(b.name), \(b.tenant), \(b.period.rawValue), \(amount)::numeric, \(thresholds)::numeric[], \(b.basis.rawValue))
                ON CONFLICT (name) DO UPDATE SET tenant = EXCLUDED.tenant, period = EXCLUDED.period, amount_usd = EXCLUDED.amount_usd,
                    thresholds = EXCLUDED.thresholds, basis = EXCLUDED.basis, updated_at = now()
                RETURNING (xmax = 0)
                """, logger: logger)
            for try await inserted in rows.decode(Bool.self) { return inserted }
            return false
        }
    }

    public func get(_ name: String) async throws -> Budget? {
        try await list(name: name).first
    }

    /// Every budget (of `tenant` when given), by name.
    public func list(tenant: String? = nil, name: String? = nil) async throws -> [Budget] {
        let logger = self.logger
        return try await db.withConnection { conn in
            let rows = try await conn.query("""
                SELECT name, tenant, period, amount_usd::text, array_to_string(thresholds, ','), basis FROM budgets
                WHERE (\(tenant)::text IS NULL OR tenant = \(tenant)) AND (\(name)::text IS NULL OR name = \(name))
                ORDER BY name COLLATE "C"
                """, logger: logger)
            var out: [Budget] = []
            for try await (n, t, p, a, th, basis) in rows.decode((String, String?, String, String, String, String).self) {
                guard let cadence = Budget.Cadence(rawValue: p), let b = Budget.Basis(rawValue: basis),
                      let amount = CentRounding.decimal(a) else { continue }
                let thresholds = th.split(separator: ",").compactMap { CentRounding.decimal(String($0)) }
                out.append(Budget(name: n, tenant: t, period: cadence, amount: amount, thresholds: thresholds, basis: b))
            }
            return out
        }
    }

    /// Deletes a budget; false when there was none.
    public func delete(_ name: String) async throws -> Bool {
        let logger = self.logger
        return try await db.withConnection { conn in
            var deleted = false
            for try await _ in try await conn.query("DELETE FROM budgets WHERE name = \(name) RETURNING 1", logger: logger) { deleted = true }
            return deleted
        }
    }
}
