import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

public struct Pool: Sendable, Equatable {
    public var name: String
    public var accelerator: String
    public var provider: String
    public var region: String
    public var tier: Tier
    /// An override of the rate cards' price, as exact decimal text; nil: the cards' rate in force.
    public var usdPerGPUHour: String?

    public init(name: String, accelerator: String, provider: String, region: String, tier: Tier, usdPerGPUHour: String?) {
        self.name = name
        self.accelerator = accelerator
        self.provider = provider
        self.region = region
        self.tier = tier
        self.usdPerGPUHour = usdPerGPUHour
    }
}

public struct CapacityEvent: Sendable, Equatable {
    public var at: Timestamp
    public var gpus: Int
    public init(at: Timestamp, gpus: Int) { self.at = at; self.gpus = gpus }
}

/// Pools and their capacity events.
public struct PoolStore: Sendable {
    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) { self.db = database }

    public enum Outcome: Sendable, Equatable { case created, updated, unchanged }

    /// Creates or replaces a pool's definition.
    public func put(_ pool: Pool) async throws -> Outcome {
        let logger = self.logger
        return try await db.withConnection { conn in
            let rows = try await conn.query("""
                INSERT INTO pools (name, accelerator, provider, region, tier, usd_per_gpu_hour)
                VALUES (\(pool.name), \(pool.accelerator), \(pool.provider), \(pool.region), \(pool.tier.rawValue), \(pool.usdPerGPUHour)::numeric)
                ON CONFLICT (name) DO UPDATE SET accelerator = EXCLUDED.accelerator, provider = EXCLUDED.provider,
                    region = EXCLUDED.region, tier = EXCLUDED.tier, usd_per_gpu_hour = EXCLUDED.usd_per_gpu_hour, updated_at = now()
                RETURNING (xmax = 0)
                """, logger: logger)
            for try await inserted in rows.decode(Bool.self) { return inserted ? .created : .updated }
            return .updated
        }
    }

    public func get(_ name: String) async throws -> (Pool, [CapacityEvent])? {
        let logger = self.logger
        return try await db.withConnection { conn -> (Pool, [CapacityEvent])? in
            var pool: Pool?
            for try await (a, p, r, t, price) in try await conn.query(
                "SELECT accelerator, provider, region, tier, usd_per_gpu_hour::text FROM pools WHERE name = \(name)", logger: logger)
                .decode((String, String, String, String, String?).self) {
                pool = Pool(name: name, accelerator: a, provider: p, region: r, tier: Tier(rawValue: t) ?? .onDemand, usdPerGPUHour: price)
            }
            guard let pool else { return nil }
            var events: [CapacityEvent] = []
            for try await (at, gpus) in try await conn.query(
                "SELECT (extract(epoch FROM at) * 1000000)::bigint, gpus FROM pool_capacity WHERE pool = \(name) ORDER BY at", logger: logger)
                .decode((Int64, Int).self) {
                events.append(CapacityEvent(at: Timestamp(microseconds: at), gpus: gpus))
            }
            return (pool, events)
        }
    }

    public func list() async throws -> [String] {
        let logger = self.logger
        return try await db.withConnection { conn in
            var names: [String] = []
            for try await n in try await conn.query("SELECT name FROM pools ORDER BY name", logger: logger).decode(String.self) { names.append(n) }
            return names
        }
    }

    public enum CapacityOutcome: Sendable, Equatable { case created, unchanged, conflict(existing: Int), noSuchPool }

    /// Records that `pool` holds `gpus` GPUs from `at` on. The same event again is a no-op; a
    /// different count at the same time is a conflict (the first write stands).
    public func addCapacity(pool: String, _ event: CapacityEvent) async throws -> CapacityOutcome {
        let logger = self.logger
        let at = event.at.rfc3339
        return try await db.withTransaction { tx in
            var exists = false
            for try await _ in try await tx.query("SELECT 1 FROM pools WHERE name = \(pool) FOR SHARE", logger: logger) { exists = true }
            guard exists else { return .noSuchPool }
            var inserted = false
            for try await _ in try await tx.query("""
                INSERT INTO pool_capacity (pool, at, gpus) VALUES (\(pool), \(at)::timestamptz, \(event.gpus))
                ON CONFLICT (pool, at) DO NOTHING RETURNING 1
                """, logger: logger) { inserted = true }
            if inserted { return .created }
            var existing = event.gpus
            for try await g in try await tx.query("SELECT gpus FROM pool_capacity WHERE pool = \(pool) AND at = \(at)::timestamptz", logger: logger).decode(Int.self) {
                existing = g
            }
            return existing == event.gpus ? .unchanged : .conflict(existing: existing)
        }
    }
}
