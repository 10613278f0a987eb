import Foundation
import GPULedgerCore
import GPULedgerStore
import Logging
import PostgresNIO

/// The benchmarks' fleet: `records` realistic records over the 30 days from `start`, loaded
/// straight into PostgreSQL (not over HTTP) through the same triggers that keep the rollup
/// during ingest: tenants skewed (a few large, many small), 8 models each on its pool and
/// accelerator (one on no pool), hours shaped by ServeGen's hourly request counts, input/output
/// tokens from the Azure 2023 traces (`traces`: ../shared/data/traces, CC-BY-4.0), GPU-seconds
/// from tokens by model size, 1% errors, a team label on most. Pools have capacity that grows by
/// a quarter 15 days in; rates change 14 days in.
public enum BenchmarkFleet {
    public static func load(_ service: BenchmarkService, records total: Int, start: Timestamp, traces: String,
                            print: (String) -> Void) async throws {
        let db = service.db, logger = service.logger
        func day(_ n: Int64) -> String { String(start.adding(seconds: n * 86_400).rfc3339.prefix(10)) }

        /// Token pairs from the Azure traces; hourly weights from ServeGen (hour index mod its 336 hours).
        func csvColumns(_ path: String, _ names: [String]) throws -> [[String]] {
            let rows = CSVRows.parse(try String(contentsOfFile: path, encoding: .utf8))
            guard let header = rows.first?.fields else { return [] }
            let idx = names.map { header.firstIndex(of: $0)! }
            return rows.dropFirst().map { r in idx.map { r.fields[$0] } }
        }
        var tokens: [(Int, Int)] = []
        for f in ["azure_llm_2023_conv.csv", "azure_llm_2023_code.csv"] {
            for r in try csvColumns(traces + "/" + f, ["input_tokens", "output_tokens"]) { tokens.append((Int(r[0])!, Int(r[1])!)) }
        }
        var hourly = [Double](repeating: 0, count: 336)
        for r in try csvColumns(traces + "/servegen_hourly.csv", ["model", "hour", "requests"]) where r[0].hasPrefix("m-") {
            if let h = Int(r[1]), h < 336 { hourly[h] += Double(r[2])! }
        }
        let hours = 30 * 24
        let weights = (0..<hours).map { hourly[$0 % 336] }
        let weightSum = weights.reduce(0, +)
        var perHour = weights.map { Int(Double(total) * $0 / weightSum) }
        perHour[0] += total - perHour.reduce(0, +)
        print("data: \(tokens.count) token pairs (Azure 2023), hourly shape from ServeGen (peak/trough \(String(format: "%.1f", weights.max()! / weights.min()!))×)")

        await service.sql("CREATE TEMPORARY TABLE IF NOT EXISTS x (a int)") // warm a connection
        await service.sql("CREATE UNLOGGED TABLE bench_tokens (i int PRIMARY KEY, input_tokens int, output_tokens int)")
        for chunk in stride(from: 0, to: tokens.count, by: 5000) {
            let values = tokens[chunk..<min(chunk + 5000, tokens.count)].enumerated().map { "(\(chunk + $0.offset), \($0.element.0), \($0.element.1))" }
            await service.sql("INSERT INTO bench_tokens VALUES " + values.joined(separator: ","))
        }
        await service.sql("CREATE UNLOGGED TABLE bench_hours (h int PRIMARY KEY, cnt int, first bigint)")
        var first = 0
        var hourValues: [String] = []
        for h in 0..<hours { hourValues.append("(\(h), \(perHour[h]), \(first))"); first += perHour[h] }
        await service.sql("INSERT INTO bench_hours VALUES " + hourValues.joined(separator: ","))
        // model, accelerator, pool ('' none), GPU-seconds per input token and per output token
        await service.sql("""
            CREATE UNLOGGED TABLE bench_models (m int PRIMARY KEY, model text, accelerator text, pool text, per_in numeric, per_out numeric);
            """)
        await service.sql("""
            INSERT INTO bench_models VALUES
              (0, 'llama-3.1-8b', 'L4', 'l4-pool', 0.000004, 0.00012),
              (1, 'llama-3.1-70b', 'H100', 'h100-a', 0.00002, 0.0006),
              (2, 'llama-3.1-405b', 'H200', 'h200-a', 0.00006, 0.0018),
              (3, 'mistral-7b', 'A10G', 'a10g-pool', 0.000005, 0.00015),
              (4, 'mixtral-8x7b', 'A100-80GB', 'a100-pool', 0.000012, 0.0003),
              (5, 'qwen2.5-72b', 'H100', 'h100-b', 0.00002, 0.0006),
              (6, 'deepseek-v3', 'H200', 'h200-a', 0.00004, 0.0012),
              (7, 'gemma-2-27b', 'L40S', '', 0.00001, 0.0003)
            """)
        // Rates: one bench key per accelerator, on demand and spot, each changed 14 days in, as a
        // rate card in the service's pricing folder.
        var rates: [BenchmarkService.CardRate] = []
        // (Decimal text, not float literals: a literal goes through a Double.)
        let onDemand = [("L4", "0.80"), ("H100", "3.93"), ("H200", "4.98"), ("A10G", "1.01"), ("A100-80GB", "2.56"), ("L40S", "1.86")]
        for (acc, od) in onDemand {
            for (tier, from, factor) in [("on_demand", day(-30), "1"), ("on_demand", day(14), "1.08"), ("spot", day(-30), "0.4"), ("spot", day(14), "0.45")] {
                let usd = Decimal(string: od)! * Decimal(string: factor)!
                rates.append(("bench", "r1", acc, tier, CentRounding.rounded(usd, scale: 4, .plain), from))
            }
        }
        await service.loadRateCard("bench", rates: rates, defaults: onDemand.map { ($0.0, "bench", "r1", "on_demand") })
        await service.sql("""
            INSERT INTO pools (name, accelerator, provider, region, tier) VALUES
              ('l4-pool', 'L4', 'bench', 'r1', 'on_demand'), ('h100-a', 'H100', 'bench', 'r1', 'on_demand'),
              ('h100-b', 'H100', 'bench', 'r1', 'spot'), ('h200-a', 'H200', 'bench', 'r1', 'on_demand'),
              ('a10g-pool', 'A10G', 'bench', 'r1', 'on_demand'), ('a100-pool', 'A100-80GB', 'bench', 'r1', 'on_demand')
            """)

        print("loading \(total) records…")
        let loadClock = ContinuousClock.now
        let tokenCount = tokens.count
        for day in 0..<30 {
            // One statement per day: records of its hours, attributes from hashes of the record number.
            await service.insertRecords("""
                INSERT INTO usage_records (tenant, request_id, model, accelerator, pool, started_at, gpu_seconds, input_tokens, output_tokens,
                                           cached_input_tokens, ttft_ms, tpot_ms, e2e_ms, status, error_type, labels)
                SELECT 'tenant-' || lpad((floor(40 * power(u1, 2.2)))::int::text, 2, '0'),
                       'r' || n, m.model, m.accelerator, nullif(m.pool, ''),
                       TIMESTAMPTZ '\(start.rfc3339)' + (h.h * 3600 + u2 * 3600) * INTERVAL '1 second',
                       round(t.input_tokens * m.per_in + t.output_tokens * m.per_out, 6), t.input_tokens, t.output_tokens,
                       t.input_tokens / 3, 50 + u3 * 900, 10 + u4 * 40, 500 + u3 * 20000,
                       CASE WHEN u4 < 0.01 THEN 'error' ELSE 'ok' END, CASE WHEN u4 < 0.01 THEN 'timeout' END,
                       CASE WHEN u5 < 0.7 THEN jsonb_build_object('team', 'team-' || floor(u5 * 10)::int) END
                FROM bench_hours h
                     CROSS JOIN LATERAL generate_series(h.first, h.first + h.cnt - 1) AS n
                     CROSS JOIN LATERAL (SELECT (hashint8(n) & 2147483647) / 2147483648.0::float8 AS u1,
                                                (hashint8(n + 1000000007) & 2147483647) / 2147483648.0::float8 AS u2,
                                                (hashint8(n + 2000000011) & 2147483647) / 2147483648.0::float8 AS u3,
                                                (hashint8(n + 3000000019) & 2147483647) / 2147483648.0::float8 AS u4,
                                                (hashint8(n + 4000000007) & 2147483647) / 2147483648.0::float8 AS u5) AS u
                     JOIN bench_models m ON m.m = (hashint8(n * 7) & 2147483647) % 8
                     JOIN bench_tokens t ON t.i = (hashint8(n * 13) & 2147483647) % \(tokenCount)
                WHERE h.h >= \(day * 24) AND h.h < \(day * 24 + 24)
                """)
            if day % 5 == 4 { print("  day \(day + 1) of 30 loaded (\(String(format: "%.0f", milliseconds(ContinuousClock.now - loadClock) / 1000)) s)") }
        }
        await service.foldSummaries()
        // Capacity: sized from each pool's busiest hour (about 70% there), grown by a quarter mid-month.
        await service.sql("""
            INSERT INTO pool_capacity (pool, at, gpus)
            SELECT pool, at, gpus FROM (
                SELECT pool, ceil(max(gs) / 3600 / 0.7 * 0.8)::int AS g FROM (
                    SELECT pool, hour, sum(gpu_seconds) AS gs FROM usage_hourly WHERE pool <> '' GROUP BY 1, 2) x GROUP BY 1) p,
            LATERAL (VALUES (TIMESTAMPTZ '\(start.adding(seconds: -6 * 86_400).rfc3339)', g), (TIMESTAMPTZ '\(start.adding(seconds: 15 * 86_400 + 34_200).rfc3339)', ceil(g * 1.25)::int)) AS v(at, gpus)
            """)
        await service.sql("VACUUM ANALYZE usage_records")
        await service.sql("VACUUM ANALYZE usage_hourly")
        await service.sql("VACUUM ANALYZE usage_daily")
        await service.sql("VACUUM ANALYZE usage_daily_fleet")
        await service.sql("VACUUM ANALYZE usage_delta")
        let loadSeconds = milliseconds(ContinuousClock.now - loadClock) / 1000
        let sizes = try await db.withConnection { conn in
            var out = ""
            for try await (r, h, rs, hs) in try await conn.query("""
                SELECT (SELECT count(*) FROM usage_records), (SELECT count(*) FROM usage_hourly),
                       pg_size_pretty(pg_total_relation_size('usage_records')), pg_size_pretty(pg_total_relation_size('usage_hourly'))
                """, logger: logger).decode((Int64, Int64, String, String).self) {
                out = "\(r) records (\(rs)), \(h) rollup rows (\(hs))"
            }
            return out
        }
        print(String(format: "loaded in %.0f s: ", loadSeconds) + sizes)
    }
}
