import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import GPULedgerTelemetry
import Hummingbird
import Tracing

/// `GET /v1/stats`: the serving figures (latency percentiles, errors, throughput, busy GPUs,
/// utilization) per group, from the same records as the costs; with `hardware` (serve
/// `--prometheus-url`), each pool row's GPU hardware figures next to them.
struct StatsController {
    let stats: StatsStore
    let hardware: PoolHardware?

    /// Pool rows past this many get no hardware figures (each costs five Prometheus queries).
    static let hardwareRowLimit = 100

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("stats", use: report)
    }

    @Sendable func report(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let params = try Query(request, allowed: ["from", "to", "group_by", "tenant", "model", "accelerator", "pool", "exact"])
        let (from, to) = try params.range(now: context.now)
        let groupBy = try params.get("group_by").map(GroupKey.parseList) ?? []
        let tenant = try Scope.tenant(principal, asked: params.get("tenant"), log: context.logFields)
        let query = CostQuery(from: from, to: to, groupBy: groupBy, tenant: tenant, model: params.get("model"),
                              accelerator: params.get("accelerator"), pool: params.get("pool"))
        let choice: PercentileChoice
        switch params.get("exact") {
        case nil: choice = .auto
        case "true": choice = .exact
        case "false": choice = .sketch
        case let other?: throw AppError.badRequest("exact=\(other) must be true or false", code: "bad_query")
        }
        let result = try await withSpan("report stats", ofKind: .internal) { _ in try await stats.stats(query, percentiles: choice) }
        let names = groupBy.map(\.description)
        var rows = result.rows.map { Row(names: names, row: $0) }
        if let hardware, let poolIndex = groupBy.firstIndex(of: .pool), groupBy.allSatisfy({ [.pool, .hour, .day, .month].contains($0) }) {
            let found = try await Self.hardwareRows(hardware, result.rows, groupBy: groupBy, poolIndex: poolIndex, from: from, to: to, now: context.now)
            for i in rows.indices { rows[i].hardware = found[i] }
        }
        return try JSONResponse.make(Answer(from: from.rfc3339, to: to.rfc3339, group_by: names,
                                            percentile_method: result.sketched ? Self.sketchMethod : Self.exactMethod,
                                            rows: rows, total: Row(names: [], row: result.total)))
    }

    /// Each row's hardware figures (a row of no pool, or past the limit, gets a note only).
    static func hardwareRows(_ hardware: PoolHardware, _ rows: [StatsRow], groupBy: [GroupKey], poolIndex: Int,
                             from: Timestamp, to: Timestamp, now: Timestamp) async throws -> [HardwareCell] {
        let selectors = try await hardware.selectors()
        var cells = [HardwareCell](repeating: HardwareCell(row: nil, note: nil), count: rows.count)
        try await withThrowingTaskGroup(of: (Int, HardwareCell).self) { group in
            var running = 0
            for (i, r) in rows.enumerated() {
                guard let pool = r.group[poolIndex] ?? nil else {
                    cells[i].note = "records without a pool have no GPUs of their own"
                    continue
                }
                guard i < hardwareRowLimit else {
                    cells[i].note = "more than \(hardwareRowLimit) pool rows: ask for a shorter range or a coarser group_by for hardware figures"
                    continue
                }
                let (ws, we) = window(of: r, groupBy: groupBy, from: from, to: to)
                if running == 8 { let (j, c) = try await group.next()!; cells[j] = c; running -= 1 }
                group.addTask {
                    let row = try await hardware.row(pool: pool, selector: selectors[pool], from: ws, to: we, now: now, ledgerGPUSeconds: r.gpuSeconds)
                    return (i, HardwareCell(row: row, note: row.note))
                }
                running += 1
            }
            for try await (j, c) in group { cells[j] = c }
        }
        return cells
    }

    /// A row's window: its time bucket (hour, day or month) within `[from, to)`, else the range.
    static func window(of row: StatsRow, groupBy: [GroupKey], from: Timestamp, to: Timestamp) -> (Timestamp, Timestamp) {
        var start = from, end = to
        for (i, key) in groupBy.enumerated() {
            guard let text = row.group[i] ?? nil else { continue }
            let bucket: (Timestamp, Timestamp)?
            switch key {
            case .hour: bucket = Timestamp.parseRequestTime(text).map { ($0, $0.adding(hours: 1)) }
            case .day: bucket = Timestamp.parseRequestTime(text).map { ($0, $0.adding(days: 1)) }
            case .month: bucket = Timestamp.parseRequestTime(text + "-01").map { t in (t, Period.containing(t).end) }
            default: bucket = nil
            }
            if let (s, e) = bucket {
                start = Timestamp(microseconds: max(start.microseconds, s.microseconds))
                end = Timestamp(microseconds: min(end.microseconds, e.microseconds))
            }
        }
        return (start, end)
    }

    static let exactMethod = "exact, nearest rank (PostgreSQL percentile_disc) over the records that carry the figure"
    static let sketchMethod = "sketch, ±1%: within 1% of the exact nearest-rank value, merged from hourly latency sketches (exact=true for the exact figures)"

    struct HardwareCell: Sendable {
        var row: PoolHardwareRow?
        var note: String?
    }

    struct Answer: Encodable {
        var from, to: String
        var group_by: [String]
        var percentile_method: String
        var rows: [Row]
        var total: Row
    }

    struct Row: Encodable {
        var names: [String]
        var row: StatsRow
        /// Set on pool rows when hardware telemetry is on.
        var hardware: HardwareCell?

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
            if let hardware {
                try c.encode(hardware.row.flatMap { r in r.figures.map { Hardware(r, $0) } }, forKey: "hardware")
                try c.encode(hardware.note, forKey: "hardware_note")
            }
        }
    }

    /// The `hardware` object of a pool row (contract section 5), with the window's three views of
    /// its GPU-hours: paid for, accounted for by records, busy in the hardware.
    struct Hardware: Encodable {
        var utilization: Double
        var utilization_source: String
        var memory_used_ratio_max: Double?
        var power_watts_mean: Double?
        var temperature_c_max: Double?
        var gpus: Int
        var paid_gpu_hours: Decimal
        var ledger_gpu_hours: Double
        var busy_gpu_hours: Double
        var idle_allocated_gpu_hours: Decimal
        var idle_allocated_cost_usd: String?

        init(_ r: PoolHardwareRow, _ f: HardwareFigures) {
            func round(_ x: Double, _ places: Double = 1e6) -> Double { (x * places).rounded() / places }
            utilization = round(f.utilization)
            utilization_source = f.utilizationSource
            memory_used_ratio_max = f.memoryUsedRatioMax.map { round($0) }
            power_watts_mean = f.powerWattsMean.map { round($0, 1e3) }
            temperature_c_max = f.temperatureCMax.map { round($0, 1e3) }
            gpus = f.gpus
            paid_gpu_hours = CentRounding.rounded(r.paidGPUSeconds / 3600, scale: 6, .plain)
            ledger_gpu_hours = round(r.ledgerGPUSeconds / 3600)
            let busy = f.busyGPUSeconds(windowSeconds: r.windowSeconds)
            busy_gpu_hours = round(busy / 3600)
            idle_allocated_gpu_hours = CentRounding.rounded(max(0, r.paidGPUSeconds - Decimal(busy)) / 3600, scale: 6, .plain)
            idle_allocated_cost_usd = r.idleAllocatedCost.map(CentRounding.cents)
        }
    }
}
