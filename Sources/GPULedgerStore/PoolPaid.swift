import Foundation
import GPULedgerCore
import PostgresNIO

/// What a pool paid for over a window: its provisioned GPU-seconds and their cost, hour by hour
/// at the rate in force at each hour's start (as the chargeback's provisioned lines price them).
public struct PoolPaid: Sendable, Equatable {
    public var provisionedGPUSeconds: Decimal
    /// nil when no rate covers any of the hours.
    public var cost: Decimal?
    /// Provisioned GPU-seconds of hours no rate covers.
    public var unpricedGPUSeconds: Decimal
}

extension StatsStore {
    /// The pools that name their GPUs' series (`gpu_selector`), by name.
    public func gpuSelectors() async throws -> [String: GPUSelector] {
        let logger = self.logger
        return try await db.withConnection { conn in
            var out: [String: GPUSelector] = [:]
            for try await (name, json) in try await conn.query("SELECT name, gpu_selector::text FROM pools WHERE gpu_selector IS NOT NULL",
                                                               logger: logger).decode((String, String).self) {
                if let s = GPUSelector.parse(json: json) { out[name] = s }
            }
            return out
        }
    }

    /// Every pool with capacity before `to`, with the GPU-seconds its records report in the
    /// whole hours of `[from, to)` (from the summaries), by name.
    public func poolLedger(from: Timestamp, to: Timestamp) async throws -> [(pool: String, gpuSeconds: Double)] {
        let logger = self.logger
        let (f, t) = (from.rfc3339, to.rfc3339)
        return try await db.withConnection { conn in
            var out: [(pool: String, gpuSeconds: Double)] = []
            for try await (pool, gs) in try await conn.query("""
                SELECT p.name, coalesce((SELECT sum(h.gpu_seconds) FROM usage_hourly_live h
                                         WHERE h.pool = p.name AND h.hour >= \(f)::timestamptz AND h.hour < \(t)::timestamptz), 0)::float8
                FROM pools p WHERE EXISTS (SELECT 1 FROM pool_capacity c WHERE c.pool = p.name AND c.at < \(t)::timestamptz AND c.gpus > 0)
                ORDER BY p.name
                """, logger: logger).decode((String, Double).self) {
                out.append((pool, gs))
            }
            return out
        }
    }

    /// What `pool` paid for in `[from, min(to, now))`.
    public func paid(pool: String, from: Timestamp, to: Timestamp, now: Timestamp) async throws -> PoolPaid {
        var q = SQLText()
        let name = q.bind(pool), f = q.bind(from), e = q.bind(Timestamp(microseconds: min(to.microseconds, now.microseconds)))
        q.sql = "WITH " + ReportSQL.seg + """
            ,
            cap AS (SELECT at AS s, coalesce(lead(at) OVER (ORDER BY at), 'infinity') AS e, gpus FROM pool_capacity WHERE pool = \(name)),
            hp AS (
                SELECT h.hour, sum(c.gpus * extract(epoch FROM least(c.e, h.hour + interval '1 hour', \(e)) - greatest(c.s, h.hour, \(f)))) AS gs
                FROM generate_series(date_trunc('hour', \(f), 'UTC'), \(e) - interval '1 microsecond', interval '1 hour') AS h(hour)
                JOIN cap c ON c.gpus > 0 AND c.s < least(h.hour + interval '1 hour', \(e)) AND c.e > greatest(h.hour, \(f))
                GROUP BY h.hour
            ),
            priced AS (
                SELECT hp.gs, coalesce(p.usd_per_gpu_hour, s.rate) AS rate
                FROM hp JOIN pools p ON p.name = \(name)
                LEFT JOIN seg s ON p.usd_per_gpu_hour IS NULL AND s.provider = p.provider AND s.region = p.region
                     AND s.accelerator = p.accelerator AND s.tier = p.tier AND hp.hour >= s.s AND (s.e IS NULL OR hp.hour < s.e)
            )
            SELECT coalesce(sum(gs), 0)::text, (sum(gs * rate) / 3600)::text, coalesce(sum(gs) FILTER (WHERE rate IS NULL), 0)::text FROM priced
            """
        let logger = self.logger
        let query = q.query
        return try await db.withConnection { conn in
            var out = PoolPaid(provisionedGPUSeconds: 0, cost: nil, unpricedGPUSeconds: 0)
            for try await (gs, cost, unpriced) in try await conn.query(query, logger: logger).decode((String, String?, String).self) {
                out = PoolPaid(provisionedGPUSeconds: CentRounding.decimal(gs) ?? 0, cost: cost.flatMap(CentRounding.decimal),
                               unpricedGPUSeconds: CentRounding.decimal(unpriced) ?? 0)
            }
            return out
        }
    }
}
