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
    /// How the pool's paid GPU time is split (`gpu_seconds` unless the pool says otherwise).
    public var allocation: Allocation
    /// The token weights of a `tokens` pool (kept, and unused, for a `gpu_seconds` one).
    public var tokenWeights: TokenWeights
    /// Which dcgm-exporter series are the pool's GPUs (nil: none named).
    public var gpuSelector: GPUSelector?

    public init(name: String, accelerator: String, provider: String, region: String, tier: Tier, usdPerGPUHour: String?,
                allocation: Allocation = .gpuSeconds, tokenWeights: TokenWeights = .default, gpuSelector: GPUSelector? = nil) {
        self.gpuSelector = gpuSelector
        self.allocation = allocation
        self.tokenWeights = tokenWeights
        self.name = name
        self.accelerator = accelerator
        self.provider = provider
        self.region = region
        self.tier = tier
        self.usdPerGPUHour = usdPerGPUHour
    }
}

/// A change of a pool's allocation or token weights: it re-prices the pool's whole history.
public struct PoolChange: Sendable, Equatable {
    public var at: Timestamp
    public var oldAllocation: String
    public var newAllocation: String
    public var oldWeights: String
    public var newWeights: String
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

    /// Creates or replaces a pool's definition. A change of its allocation or token weights is
    /// listed in `pool_changes` and logged (it re-prices the pool's history, as a rate does).
    public func put(_ pool: Pool) async throws -> Outcome {
        let logger = self.logger
        let w = pool.tokenWeights
        let (wi, wc, wo) = ("\(w.input)", "\(w.cachedInput)", "\(w.output)")
        return try await db.withTransaction { tx in
            var old: (String, String)?
            for try await (a, t) in try await tx.query("""
                SELECT allocation, 'input=' || trim_scale(w_input) || ',cached_input=' || trim_scale(w_cached_input) || ',output=' || trim_scale(w_output)
                FROM pools WHERE name = \(pool.name) FOR UPDATE
                """, logger: logger).decode((String, String).self) { old = (a, t) }
            let rows = try await tx.query("""
                INSERT INTO pools (name, accelerator, provider, region, tier, usd_per_gpu_hour, allocation, w_input, w_cached_input, w_output,
                                   gpu_selector)
                VALUES (\(pool.name), \(pool.accelerator), \(pool.provider), \(pool.region), \(pool.tier.rawValue), \(pool.usdPerGPUHour)::numeric,
                        \(pool.allocation.rawValue), \(wi)::numeric, \(wc)::numeric, \(wo)::numeric, \(pool.gpuSelector?.json)::jsonb)
                ON CONFLICT (name) DO UPDATE SET accelerator = EXCLUDED.accelerator, provider = EXCLUDED.provider,
                    region = EXCLUDED.region, tier = EXCLUDED.tier, usd_per_gpu_hour = EXCLUDED.usd_per_gpu_hour,
                    allocation = EXCLUDED.allocation, w_input = EXCLUDED.w_input, w_cached_input = EXCLUDED.w_cached_input,
                    w_output = EXCLUDED.w_output, gpu_selector = EXCLUDED.gpu_selector, updated_at = now()
                RETURNING (xmax = 0)
                """, logger: logger)
            var outcome = Outcome.updated
            for try await inserted in rows.decode(Bool.self) { outcome = inserted ? .created : .updated }
            if let (oldAllocation, oldWeights) = old, oldAllocation != pool.allocation.rawValue || oldWeights != w.text {
                try await tx.query("""
                    INSERT INTO pool_changes (pool, old_allocation, new_allocation, old_weights, new_weights)
                    VALUES (\(pool.name), \(oldAllocation), \(pool.allocation.rawValue), \(oldWeights), \(w.text))
                    """, logger: logger)
                logger.notice("pool allocation changed: its history is re-priced", metadata: [
                    "pool": .string(pool.name), "from": .string("\(oldAllocation) \(oldWeights)"),
                    "to": .string("\(pool.allocation.rawValue) \(w.text)"),
                ])
            }
            return outcome
        }
    }

    /// The changes of a pool's allocation or weights, oldest first.
    public func changes(_ name: String) async throws -> [PoolChange] {
        let logger = self.logger
        return try await db.withConnection { conn in
            var out: [PoolChange] = []
            for try await (at, oa, na, ow, nw) in try await conn.query("""
                SELECT (extract(epoch FROM changed_at) * 1000000)::bigint, old_allocation, new_allocation, old_weights, new_weights
                FROM pool_changes WHERE pool = \(name) ORDER BY changed_at
                """, logger: logger).decode((Int64, String, String, String, String).self) {
                out.append(PoolChange(at: Timestamp(microseconds: at), oldAllocation: oa, newAllocation: na, oldWeights: ow, newWeights: nw))
            }
            return out
        }
    }

    /// Per hour of `[from, to)`, the sums of `pool`'s records that carry GPU-seconds (for fitting
    /// token weights to them).
    public func measuredHours(pool: String, from: Timestamp, to: Timestamp) async throws -> [TokenWeightFit.Hour] {
        let logger = self.logger
        let (f, t) = (from.rfc3339, to.rfc3339)
        return try await db.withConnection { conn in
            var out: [TokenWeightFit.Hour] = []
            for try await (g, i, c, o) in try await conn.query("""
                SELECT sum(r.gpu_seconds)::float8, sum(r.input_tokens - coalesce(r.cached_input_tokens, 0))::float8,
                       sum(coalesce(r.cached_input_tokens, 0))::float8, sum(r.output_tokens)::float8
                FROM usage_records r JOIN pools p ON p.name = r.pool AND p.accelerator = r.accelerator
                WHERE r.pool = \(pool) AND r.started_at >= \(f)::timestamptz AND r.started_at < \(t)::timestamptz AND r.gpu_seconds IS NOT NULL
                GROUP BY date_trunc('hour', r.started_at, 'UTC')
                """, logger: logger).decode((Double, Double, Double, Double).self) {
                out.append(TokenWeightFit.Hour(gpuSeconds: g, uncachedInput: i, cachedInput: c, output: o))
            }
            return out
        }
    }

    /// Every pool's accelerator, and the pools that allocate by tokens: what turning spans into
    /// records needs (`POST /v1/traces`: a span's accelerator defaults to its pool's).
    public func ingestView() async throws -> (accelerators: [String: String], tokenPools: Set<String>) {
        let logger = self.logger
        return try await db.withConnection { conn in
            var accelerators: [String: String] = [:], tokens = Set<String>()
            for try await (n, a, allocation) in try await conn.query("SELECT name, accelerator, allocation FROM pools", logger: logger)
                .decode((String, String, String).self) {
                accelerators[n] = a
                if allocation == Allocation.tokens.rawValue { tokens.insert(n) }
            }
            return (accelerators, tokens)
        }
    }

    /// The names of the pools that allocate by tokens (their records may omit gpu_seconds).
    public func tokenPools() async throws -> Set<String> {
        let logger = self.logger
        return try await db.withConnection { conn in
            var names = Set<String>()
            for try await n in try await conn.query("SELECT name FROM pools WHERE allocation = 'tokens'", logger: logger).decode(String.self) {
                names.insert(n)
            }
            return names
        }
    }

    public func get(_ name: String) async throws -> (Pool, [CapacityEvent])? {
        let logger = self.logger
        return try await db.withConnection { conn -> (Pool, [CapacityEvent])? in
            var pool: Pool?
            for try await (a, p, r, t, price, allocation, wi, wc, wo, selector) in try await conn.query("""
                SELECT accelerator, provider, region, tier, usd_per_gpu_hour::text, allocation,
                       trim_scale(w_input)::text, trim_scale(w_cached_input)::text, trim_scale(w_output)::text, gpu_selector::text
                FROM pools WHERE name = \(name)
                """, logger: logger)
                .decode((String, String, String, String, String?, String, String, String, String, String?).self) {
                let weights = TokenWeights(input: CentRounding.decimal(wi) ?? 1, cachedInput: CentRounding.decimal(wc) ?? 0,
                                           output: CentRounding.decimal(wo) ?? 1)
                pool = Pool(name: name, accelerator: a, provider: p, region: r, tier: Tier(rawValue: t) ?? .onDemand, usdPerGPUHour: price,
                            allocation: Allocation(rawValue: allocation) ?? .gpuSeconds, tokenWeights: weights,
                            gpuSelector: selector.flatMap { GPUSelector.parse(json: $0) })
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
