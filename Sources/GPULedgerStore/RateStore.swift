import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

/// A rate as stored, with its history columns.
public struct StoredRate: Sendable, Equatable {
    public var provider: String
    public var region: String
    public var accelerator: String
    public var tier: String
    public var effectiveFrom: Timestamp
    public var usdPerGPUHour: String
    public var source: String
    public var card: String
    public var firstSeenAt: Timestamp
    public var changedAt: Timestamp
}

/// What loading the rate cards changed.
public struct RateSync: Sendable, Equatable {
    public init() {}
    public var added = 0
    public var changed = 0
    public var retired = 0
    public var restored = 0
    public var unchanged = 0
}

/// The rate history in PostgreSQL (`rates`, `rate_changes`, `default_rates`).
public struct RateStore: Sendable {
    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) { self.db = database }

    /// Makes the stored rates match the loaded cards, in one transaction: new rates are added,
    /// changed prices updated, rates whose card no longer has them retired (rates of cards that
    /// were refused stay as they are), and every change logged in `rate_changes`.
    public func sync(_ loaded: RateCards.Loaded) async throws -> RateSync {
        let logger = self.logger
        return try await db.withTransaction { tx in
            try await tx.query("LOCK TABLE rates IN EXCLUSIVE MODE", logger: logger)
            struct Row { var price: String; var source: String; var card: String; var retired: Bool }
            var existing: [String: (Rate.Key, Int64, Row)] = [:]
            let rows = try await tx.query("""
                SELECT provider, region, accelerator, tier, (extract(epoch FROM effective_from) * 1000000)::bigint,
                       usd_per_gpu_hour::text, source, card, retired_at IS NOT NULL FROM rates
                """, logger: logger)
            for try await (p, r, a, t, eff, price, source, card, retired) in rows.decode((String, String, String, String, Int64, String, String, String, Bool).self) {
                guard let tier = Tier(rawValue: t) else { continue }
                let key = Rate.Key(provider: p, region: r, accelerator: a, tier: tier)
                existing[Self.id(key, eff)] = (key, eff, Row(price: price, source: source, card: card, retired: retired))
            }
            var sync = RateSync()
            var kept = Set<String>()
            for rate in loaded.rates {
                let id = Self.id(rate.key, rate.effectiveFrom.microseconds)
                kept.insert(id)
                let eff = rate.effectiveFrom.microseconds
                if let (_, _, row) = existing[id] {
                    let samePrice = Self.sameDecimal(row.price, rate.usdPerGPUHour)
                    if samePrice, !row.retired, row.source == rate.source, row.card == rate.file {
                        sync.unchanged += 1
                        continue
                    }
                    try await tx.query("""
                        UPDATE rates SET usd_per_gpu_hour = \(rate.usdPerGPUHour)::numeric, source = \(rate.source), card = \(rate.file),
                               changed_at = CASE WHEN usd_per_gpu_hour <> \(rate.usdPerGPUHour)::numeric OR retired_at IS NOT NULL THEN now() ELSE changed_at END,
                               retired_at = NULL
                        WHERE provider = \(rate.provider) AND region = \(rate.region) AND accelerator = \(rate.accelerator)
                          AND tier = \(rate.tier.rawValue) AND effective_from = \(Self.timestamp(eff))::timestamptz
                        """, logger: logger)
                    if row.retired {
                        sync.restored += 1
                        try await log(tx, "restored", rate.key, eff, old: row.price, new: rate.usdPerGPUHour, card: rate.file)
                    } else if !samePrice {
                        sync.changed += 1
                        try await log(tx, "changed", rate.key, eff, old: row.price, new: rate.usdPerGPUHour, card: rate.file)
                    } else {
                        sync.unchanged += 1
                    }
                } else {
                    try await tx.query("""
                        INSERT INTO rates (provider, region, accelerator, tier, effective_from, usd_per_gpu_hour, source, card)
                        VALUES (\(rate.provider), \(rate.region), \(rate.accelerator), \(rate.tier.rawValue), \(Self.timestamp(eff))::timestamptz,
                                \(rate.usdPerGPUHour)::numeric, \(rate.source), \(rate.file))
                        """, logger: logger)
                    sync.added += 1
                    try await log(tx, "added", rate.key, eff, old: nil, new: rate.usdPerGPUHour, card: rate.file)
                }
            }
            let refused = loaded.refusedFiles
            for (id, (key, eff, row)) in existing where !kept.contains(id) && !row.retired && !refused.contains(row.card) {
                try await tx.query("""
                    UPDATE rates SET retired_at = now(), changed_at = now()
                    WHERE provider = \(key.provider) AND region = \(key.region) AND accelerator = \(key.accelerator)
                      AND tier = \(key.tier.rawValue) AND effective_from = \(Self.timestamp(eff))::timestamptz
                    """, logger: logger)
                sync.retired += 1
                try await log(tx, "retired", key, eff, old: row.price, new: nil, card: row.card)
            }
            if !refused.contains(where: { $0.hasSuffix(RateCards.defaultsFile) }) {
                try await tx.query("DELETE FROM default_rates", logger: logger)
                for d in loaded.defaults {
                    try await tx.query("""
                        INSERT INTO default_rates (accelerator, provider, region, tier)
                        VALUES (\(d.accelerator), \(d.key.provider), \(d.key.region), \(d.key.tier.rawValue))
                        """, logger: logger)
                }
            }
            return sync
        }
    }

    private func log(_ tx: PostgresConnection, _ change: String, _ key: Rate.Key, _ eff: Int64, old: String?, new: String?, card: String) async throws {
        try await tx.query("""
            INSERT INTO rate_changes (change, provider, region, accelerator, tier, effective_from, old_usd_per_gpu_hour, new_usd_per_gpu_hour, card)
            VALUES (\(change), \(key.provider), \(key.region), \(key.accelerator), \(key.tier.rawValue), \(Self.timestamp(eff))::timestamptz,
                    \(old)::numeric, \(new)::numeric, \(card))
            """, logger: logger)
    }

    /// The rates in force at `at`: per (provider, region, accelerator, tier), the latest
    /// `effective_from` at or before `at`, among rates not retired.
    public func inForce(at: Timestamp) async throws -> [StoredRate] {
        let logger = self.logger
        let micros = at.microseconds
        return try await db.withConnection { conn in
            let rows = try await conn.query("""
                SELECT DISTINCT ON (provider, region, accelerator, tier)
                       provider, region, accelerator, tier, (extract(epoch FROM effective_from) * 1000000)::bigint,
                       usd_per_gpu_hour::text, source, card,
                       (extract(epoch FROM first_seen_at) * 1000000)::bigint, (extract(epoch FROM changed_at) * 1000000)::bigint
                FROM rates
                WHERE retired_at IS NULL AND effective_from <= \(Self.timestamp(micros))::timestamptz
                ORDER BY provider, region, accelerator, tier, effective_from DESC
                """, logger: logger)
            var out: [StoredRate] = []
            for try await (p, r, a, t, eff, price, source, card, first, changed) in rows.decode((String, String, String, String, Int64, String, String, String, Int64, Int64).self) {
                out.append(StoredRate(provider: p, region: r, accelerator: a, tier: t, effectiveFrom: Timestamp(microseconds: eff),
                                      usdPerGPUHour: price, source: source, card: card,
                                      firstSeenAt: Timestamp(microseconds: first), changedAt: Timestamp(microseconds: changed)))
            }
            return out
        }
    }

    /// The default rate keys, per accelerator.
    public func defaults() async throws -> [DefaultRate] {
        let logger = self.logger
        return try await db.withConnection { conn in
            var out: [DefaultRate] = []
            for try await (a, p, r, t) in try await conn.query("SELECT accelerator, provider, region, tier FROM default_rates ORDER BY 1", logger: logger)
                .decode((String, String, String, String).self) {
                if let tier = Tier(rawValue: t) { out.append(DefaultRate(accelerator: a, key: .init(provider: p, region: r, accelerator: a, tier: tier))) }
            }
            return out
        }
    }

    static func id(_ key: Rate.Key, _ eff: Int64) -> String {
        "\(key.provider)\u{1F}\(key.region)\u{1F}\(key.accelerator)\u{1F}\(key.tier.rawValue)\u{1F}\(eff)"
    }

    /// Microseconds since the epoch as RFC 3339 text, bound and cast with `::timestamptz` in the SQL.
    static func timestamp(_ micros: Int64) -> String {
        Timestamp(microseconds: micros).rfc3339
    }

    static func sameDecimal(_ a: String, _ b: String) -> Bool {
        let posix = Locale(identifier: "en_US_POSIX")
        guard let x = Decimal(string: a, locale: posix), let y = Decimal(string: b, locale: posix) else { return a == b }
        return x == y
    }
}

/// The price of one stored request: the rate in force at its start, and what it cost.
public struct RequestCost: Sendable, Equatable {
    public var usdPerGPUHour: String
    public var provider: String
    public var region: String
    public var tier: String
    /// nil for a pool's override price, which has no effective date.
    public var effectiveFrom: Timestamp?
    public var source: String
    public var card: String
    /// gpu_seconds × usd_per_gpu_hour / 3600, rounded once, half up, to 12 decimal places; in a
    /// pool that allocates by tokens, the request's weight's share of its hour's paid cost.
    public var costUSD: String
    /// The exact cost × 1,000,000 / (input + output tokens), rounded to 12 places; nil without tokens.
    public var costPer1MTokensUSD: String?
    /// How the cost was found: `gpu_seconds` or `tokens`.
    public var allocation: String = "gpu_seconds"
}

extension RateStore {
    /// Prices one stored request at the rate in force at its `started_at`: its registered pool's
    /// override price, else the rate in force for the pool's pinned (provider, region, tier),
    /// else its accelerator's default rate. A pool applies only to records of its accelerator.
    /// nil when no rate covers it.
    /// A stored record's cost; `now` bounds the capacity a `tokens` pool's current hour has paid for.
    public func cost(tenant: String, requestID: String, now: Timestamp) async throws -> RequestCost? {
        let logger = self.logger
        var q = SQLText()
        let (t, r, n) = (q.bind(tenant), q.bind(requestID), q.bind(now))
        // In a tokens pool, the request's weight's share of its hour's paid GPU-seconds, by the
        // same SQL the reports price with (`ReportSQL`).
        q.sql = """
                WITH u AS (SELECT * FROM usage_records WHERE tenant = \(t) AND request_id = \(r)),
                \(ReportSQL.tcap),
                rk AS (SELECT u.pool, date_trunc('hour', u.started_at, 'UTC') AS hour FROM u),
                share AS (
                    SELECT \(ReportSQL.paidGPUSeconds("rk", now: n))::numeric(1000, 30) / nullif(\(ReportSQL.poolHourWeight("rk")), 0) AS per_weight
                    FROM rk
                ),
                k AS (
                    SELECT u.*, p.name AS pool_name, p.usd_per_gpu_hour AS override, coalesce(p.allocation, 'gpu_seconds') AS allocation,
                           CASE WHEN p.allocation = 'tokens'
                                THEN (SELECT per_weight FROM share) * \(ReportSQL.weight("w", "p")) END AS share_gs,
                           COALESCE(p.provider, d.provider) AS k_provider, COALESCE(p.region, d.region) AS k_region,
                           COALESCE(p.tier, d.tier) AS k_tier
                    FROM u
                    CROSS JOIN LATERAL (SELECT u.input_tokens, coalesce(u.cached_input_tokens, 0) AS cached_input_tokens, u.output_tokens) w
                    LEFT JOIN pools p ON p.name = u.pool AND p.accelerator = u.accelerator
                    LEFT JOIN default_rates d ON d.accelerator = u.accelerator
                ),
                priced AS (
                    SELECT k.*, COALESCE(k.override, r.usd_per_gpu_hour) AS price, r.effective_from, r.source AS note, r.card
                    FROM k LEFT JOIN LATERAL (
                        SELECT * FROM rates r
                        WHERE r.provider = k.k_provider AND r.region = k.k_region AND r.accelerator = k.accelerator AND r.tier = k.k_tier
                          AND r.retired_at IS NULL AND r.effective_from <= k.started_at
                        ORDER BY r.effective_from DESC LIMIT 1
                    ) r ON true
                )
                SELECT price::text, k_provider, k_region, k_tier,
                       CASE WHEN override IS NULL THEN (extract(epoch FROM effective_from) * 1000000)::bigint END,
                       CASE WHEN override IS NULL THEN note ELSE 'override of pool ' || pool_name END,
                       CASE WHEN override IS NULL THEN card ELSE 'pool ' || pool_name END,
                       usd_round(coalesce(CASE WHEN allocation = 'tokens' THEN coalesce(share_gs, 0) ELSE gpu_seconds END, 0) * price, 3600)::text,
                       usd_round(coalesce(CASE WHEN allocation = 'tokens' THEN coalesce(share_gs, 0) ELSE gpu_seconds END, 0) * price * 1000000,
                                 3600 * (input_tokens + output_tokens))::text,
                       allocation
                FROM priced WHERE price IS NOT NULL
                """
        let query = q.query
        return try await db.withConnection { conn in
            let rows = try await conn.query(query, logger: logger)
            for try await (price, p, r, t, eff, source, card, cost, perM, allocation) in rows.decode((String, String, String, String, Int64?, String, String, String, String?, String).self) {
                return RequestCost(usdPerGPUHour: price, provider: p, region: r, tier: t, effectiveFrom: eff.map(Timestamp.init(microseconds:)),
                                   source: source, card: card, costUSD: cost, costPer1MTokensUSD: perM, allocation: allocation)
            }
            return nil
        }
    }
}

extension RateStore {
    /// The rates not retired, the default keys and the pools, for pricing records in memory
    /// (the cost counters of `/metrics`).
    public func priceBook() async throws -> PriceBook {
        let logger = self.logger
        return try await db.withConnection { conn in
            var rates: [PriceBook.Key: [(from: Int64, usd: Double)]] = [:]
            for try await (p, r, a, t, eff, price) in try await conn.query("""
                SELECT provider, region, accelerator, tier, (extract(epoch FROM effective_from) * 1000000)::bigint, usd_per_gpu_hour::float8
                FROM rates WHERE retired_at IS NULL
                """, logger: logger).decode((String, String, String, String, Int64, Double).self) {
                rates[PriceBook.Key(provider: p, region: r, accelerator: a, tier: t), default: []].append((eff, price))
            }
            var defaults: [String: PriceBook.Key] = [:]
            for try await (a, p, r, t) in try await conn.query("SELECT accelerator, provider, region, tier FROM default_rates", logger: logger)
                .decode((String, String, String, String).self) {
                defaults[a] = PriceBook.Key(provider: p, region: r, accelerator: a, tier: t)
            }
            var pools: [String: PriceBook.Pool] = [:]
            for try await (name, a, p, r, t, price) in try await conn.query(
                "SELECT name, accelerator, provider, region, tier, usd_per_gpu_hour::float8 FROM pools", logger: logger)
                .decode((String, String, String, String, String, Double?).self) {
                pools[name] = PriceBook.Pool(accelerator: a, key: PriceBook.Key(provider: p, region: r, accelerator: a, tier: t),
                                             overrideUSDPerGPUHour: price)
            }
            return PriceBook(rates: rates, defaults: defaults, pools: pools)
        }
    }
}
