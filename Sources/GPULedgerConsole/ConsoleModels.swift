import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import HTTPTypes
import Hummingbird

/// The Models page: per model, cost per million tokens, requests, error rate and the latency
/// percentiles, with a latency-over-time chart; the same figures as `/v1/costs` and `/v1/stats`.
extension ConsoleController {
    /// The table's windows: the last 60 minutes, or whole hours up to the current one's end.
    static let ranges: [(key: String, name: String, hours: Int64)] = [("1h", "last hour", 1), ("24h", "last 24 hours", 24), ("7d", "last 7 days", 168)]
    /// A latency the chart can show: its figures in a stats row, and its sketch in an hour's.
    static let latencyMetrics: [(key: String, name: String, value: @Sendable (StatsRow) -> StatsRow.Percentiles?,
                                 sketch: @Sendable (HourSketch) -> LatencySketch)] = [
        ("e2e", "end-to-end latency", { $0.e2eMS }, { $0.e2e }), ("ttft", "time to first token", { $0.ttftMS }, { $0.ttft }),
        ("tpot", "time per output token", { $0.tpotMS }, { $0.tpot }),
    ]

    /// One model's hour in the chart: its requests (to pick the busiest models) and the p95.
    struct ChartPoint: Sendable { var requests: Int64; var p95: Double? }

    @Sendable func models(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Models", path: "/models") { reader in
            let params = try Query(request, allowed: ["range", "metric"])
            let rangeKey = params.get("range") ?? "1h"
            guard let range = Self.ranges.first(where: { $0.key == rangeKey }) else {
                throw AppError.badRequest("range=\(rangeKey) is not one of \(Self.ranges.map(\.key).joined(separator: ", "))", code: "bad_query")
            }
            let metricKey = params.get("metric") ?? "e2e"
            guard let metric = Self.latencyMetrics.first(where: { $0.key == metricKey }) else {
                throw AppError.badRequest("metric=\(metricKey) is not one of \(Self.latencyMetrics.map(\.key).joined(separator: ", "))", code: "bad_query")
            }
            let hour = Timestamp.hour
            let now = reader.now
            let hourEnd = now.hourStart.adding(hours: 1)
            let (from, to) = range.hours == 1 ? (Timestamp(microseconds: now.microseconds - hour), now)
                                              : (Timestamp(microseconds: hourEnd.microseconds - range.hours * hour), hourEnd)
            // The chart: each hour of the last day (or of the range, when longer).
            let chartFrom = Timestamp(microseconds: hourEnd.microseconds - max(range.hours, 24) * hour)
            let tableQuery = CostQuery(from: from, to: to, groupBy: [.model], tenant: reader.scope)
            // A range over a day and large enough for the sketches: the table and the chart
            // (the same hours) from one read of them.
            // (The costs are read meanwhile, on another connection.)
            async let costAnswer = costs.costs(CostQuery(from: from, to: to, groupBy: [.model], tenant: reader.scope))
            let window = range.hours > 24 ? try await stats.sketchWindow(tableQuery, .auto) : nil
            let table: StatsAnswer
            if let window { table = StatsStore.answer(window, tableQuery) } else { table = try await stats.stats(tableQuery, percentiles: .auto) }
            let cost = try await costAnswer
            var costByModel: [String: CostRow] = [:]
            for r in cost.rows { if let m = r.group.first ?? nil { costByModel[m] = r } }

            var body = "<h1>Models</h1><p class=\"muted\" id=\"models-range\" data-from=\"\(from.rfc3339)\" data-to=\"\(to.rfc3339)\">\(reader.scope.map { "Tenant \(HTML.escape($0)), " } ?? "")\(range.name): \(from.rfc3339) to \(to.rfc3339). "
            body += table.sketched
                ? "Percentiles are within ±1% of the exact (nearest-rank) value, merged from hourly latency sketches, over the records that carry the figure, in milliseconds (<code>/v1/stats?exact=true</code> gives them exactly); "
                : "Percentiles are exact (nearest rank) over the records that carry the figure, in milliseconds; "
            body += "queue time is the wait before the engine's first step (<code>queue_ms</code>); "
            body += "the cache hit rate is cached input tokens over input tokens, of the records that report <code>cached_input_tokens</code>.</p>"
            body += "<form class=\"inline\" method=\"get\" action=\"/models\"><label for=\"range\">Range<select id=\"range\" name=\"range\">"
            for r in Self.ranges { body += "<option value=\"\(r.key)\"\(r.key == range.key ? " selected" : "")>\(r.name)</option>" }
            body += "</select></label><label for=\"metric\">Chart<select id=\"metric\" name=\"metric\">"
            for m in Self.latencyMetrics { body += "<option value=\"\(m.key)\"\(m.key == metric.key ? " selected" : "")>p95 \(m.name)</option>" }
            body += "</select></label><button type=\"submit\">Show</button></form>"

            func p(_ x: StatsRow.Percentiles?) -> [String] { [HTML.number(x?.p50), HTML.number(x?.p95), HTML.number(x?.p99)] }
            func name(_ r: StatsRow) -> String { (r.group.first ?? nil) ?? "" }
            let rows = table.rows.sorted { a, b in a.requests != b.requests ? a.requests > b.requests : name(a) < name(b) }
            let cells = rows.map { r -> [String] in
                let name = (r.group.first ?? nil) ?? ""
                let c = costByModel[name]
                return [HTML.escape(name), HTML.count(r.requests), HTML.number(r.errorRate * 100, 2) + "%",
                        c.map { HTML.money($0.costUSD) } ?? "—", c?.costPer1MTokensUSD.map(HTML.money) ?? "—"]
                    + p(r.ttftMS) + p(r.tpotMS) + p(r.e2eMS) + [HTML.number(r.queueMS?.p95), r.cacheHitRate.map { HTML.number($0 * 100, 1) + "%" } ?? "—"]
            }
            var headers: [(String, Bool)] = [("Model", false), ("Requests", true), ("Error rate", true), ("Usage cost", true), ("Per 1M tokens", true)]
            for m in ["TTFT", "TPOT", "E2E"] { headers += [("\(m) p50", true), ("\(m) p95", true), ("\(m) p99", true)] }
            headers += [("Queue p95", true), ("Cache hit rate", true)]
            body += HTML.table(id: "models", headers: headers, rows: cells,
                               empty: "No requests in the \(range.name). The serving fleet posts one record per request to POST /v1/usage.")

            // p95 of the chosen latency per hour, for the chart's busiest models: exact (kept per
            // hour: see LatencyHours), or from the sketches the table read (only the chosen
            // latency's p95).
            var series: [Int64: [String: ChartPoint]] = [:]
            if let window, chartFrom == from, hourEnd == to {
                for (h, models) in StatsStore.hourly(window, metric.sketch, quantile: 0.95) {
                    series[h] = models.mapValues { ChartPoint(requests: $0.requests, p95: $0.value) }
                }
            } else {
                for (h, models) in try await caches.latencyHours.series(stats, from: chartFrom, to: hourEnd, tenant: reader.scope) {
                    series[h] = models.mapValues { ChartPoint(requests: $0.requests, p95: metric.value($0)?.p95) }
                }
            }
            var requests: [String: Int64] = [:]
            for (_, models) in series { for (m, r) in models { requests[m, default: 0] += r.requests } }
            let top = requests.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(HTML.palette.count).map(\.key)
            if !top.isEmpty {
                let hours = stride(from: chartFrom.microseconds, to: hourEnd.microseconds, by: Int(hour)).map { $0 }
                let labels = hours.map { String(Timestamp(microseconds: $0).rfc3339.prefix(13)) + ":00Z" }
                func value(_ model: String, _ h: Int64) -> Double? { series[h]?[model]?.p95 }
                let days = max(range.hours, 24) / 24
                body += "<h2>p95 \(metric.name) per hour, last \(days == 1 ? "24 hours" : "\(days) days")\(window != nil ? " (±1%, from the hourly sketches)" : "")</h2>"
                body += HTML.lines(top.map { m in HTML.Series(name: m, values: hours.map { value(m, $0) }) }, labels: labels,
                                   title: "p95 \(metric.name) per hour of the busiest models, \(labels.first!) to \(labels.last!)",
                                   unit: { String(format: "%.0f ms", $0) })
                body += "<details><summary>The numbers (ms)</summary>"
                body += HTML.table(id: "latency-series", headers: [("Hour", false)] + top.map { (HTML.escape($0), true) },
                                   rows: zip(hours, labels).reversed().filter { h, _ in top.contains { value($0, h) != nil } }
                                       .map { h, l in [l] + top.map { HTML.number(value($0, h)) } })
                body += "</details>"
            }
            return Self.ok("Models", "/models", reader, body)
        }
    }
}
