import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird

/// `GET /v1/stats`: the serving figures (latency percentiles, errors, throughput, busy GPUs,
/// utilization) per group, from the same records as the costs.
struct StatsController {
    let stats: StatsStore

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("stats", use: report)
    }

    @Sendable func report(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let params = try Query(request, allowed: ["from", "to", "group_by", "tenant", "model", "accelerator", "pool"])
        let (from, to) = try params.range(now: context.now)
        let groupBy: [GroupKey]
        do { groupBy = try params.get("group_by").map(GroupKey.parseList) ?? [] } catch { throw AppError.badRequest(error.message, code: "bad_query") }
        let tenant = try Scope.tenant(principal, asked: params.get("tenant"), log: context.logFields)
        let result = try await stats.stats(CostQuery(from: from, to: to, groupBy: groupBy, tenant: tenant, model: params.get("model"),
                                                     accelerator: params.get("accelerator"), pool: params.get("pool")))
        let names = groupBy.map(\.description)
        return try JSONResponse.make(Answer(from: from.rfc3339, to: to.rfc3339, group_by: names,
                                            rows: result.rows.map { Row(names: names, row: $0) }, total: Row(names: [], row: result.total)))
    }

    struct Answer: Encodable {
        var from, to: String
        var group_by: [String]
        var percentile_method = "exact, nearest rank (PostgreSQL percentile_disc) over the records that carry the figure"
        var rows: [Row]
        var total: Row
    }

    struct Row: Encodable {
        var names: [String]
        var row: StatsRow

        struct P: Encodable { var p50, p95, p99: Double }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: DynamicKey.self)
            for (name, value) in zip(names, row.group) { try c.encode(value, forKey: DynamicKey(name)) }
            func round(_ x: Double, _ places: Double = 1e6) -> Double { (x * places).rounded() / places }
            func p(_ x: StatsRow.Percentiles?) -> P? { x.map { P(p50: $0.p50, p95: $0.p95, p99: $0.p99) } }
            try c.encode(row.requests, forKey: "requests")
            try c.encode(row.errors, forKey: "errors")
            try c.encode(round(row.errorRate), forKey: "error_rate")
            try c.encode(p(row.ttftMS), forKey: "ttft_ms")
            try c.encode(p(row.tpotMS), forKey: "tpot_ms")
            try c.encode(p(row.e2eMS), forKey: "e2e_ms")
            try c.encode(p(row.queueMS), forKey: "queue_ms")
            try c.encode(row.cacheHitRate.map { round($0) }, forKey: "cache_hit_rate")
            try c.encode(round(row.outputTokensPerSecond), forKey: "output_tokens_per_second")
            try c.encode(round(row.busyGPUs), forKey: "busy_gpus")
            try c.encode(row.utilization.map { round($0) }, forKey: "utilization")
            try c.encode(round(row.windowSeconds, 1e3), forKey: "window_seconds")
        }
    }
}
