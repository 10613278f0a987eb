import Foundation
import GPULedgerCore
import GPULedgerStore
import HTTPTypes
import Hummingbird

/// The Models page: per model, cost per million tokens, requests, error rate and the latency
/// percentiles, with a latency-over-time chart; the same figures as `/v1/costs` and `/v1/stats`.
extension ConsoleController {
    static let ranges: [(key: String, name: String, hours: Int64, bucket: GroupKey)] = [
        ("24h", "last 24 hours", 24, .hour), ("7d", "last 7 days", 168, .hour), ("30d", "last 30 days", 720, .day),
    ]
    static let latencyMetrics: [(key: String, name: String, value: @Sendable (StatsRow) -> StatsRow.Percentiles?)] = [
        ("e2e", "end-to-end latency", { $0.e2eMS }), ("ttft", "time to first token", { $0.ttftMS }), ("tpot", "time per output token", { $0.tpotMS }),
    ]

    @Sendable func models(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Models", path: "/models") { reader in
            let params = try Query(request, allowed: ["range", "metric"])
            let rangeKey = params.get("range") ?? "24h"
            guard let range = Self.ranges.first(where: { $0.key == rangeKey }) else {
                throw AppError.badRequest("range=\(rangeKey) is not one of \(Self.ranges.map(\.key).joined(separator: ", "))", code: "bad_query")
            }
            let metricKey = params.get("metric") ?? "e2e"
            guard let metric = Self.latencyMetrics.first(where: { $0.key == metricKey }) else {
                throw AppError.badRequest("metric=\(metricKey) is not one of \(Self.latencyMetrics.map(\.key).joined(separator: ", "))", code: "bad_query")
            }
            let hour: Int64 = 3_600_000_000
            let now = Timestamp.now()
            // Whole buckets: the current one is included, so the range ends at its end.
            let unit = range.bucket == .hour ? hour : 24 * hour
            let to = Timestamp(microseconds: (now.microseconds.floorDivided(by: unit) + 1) * unit)
            let from = Timestamp(microseconds: to.microseconds - range.hours * hour)
            let stats = try await self.stats.stats(CostQuery(from: from, to: to, groupBy: [.model], tenant: reader.scope))
            let cost = try await costs.costs(CostQuery(from: from, to: to, groupBy: [.model], tenant: reader.scope))
            var costByModel: [String: CostRow] = [:]
            for r in cost.rows { if let m = r.group.first ?? nil { costByModel[m] = r } }

            var body = "<h1>Models</h1><p class=\"muted\" id=\"models-range\" data-from=\"\(from.rfc3339)\" data-to=\"\(to.rfc3339)\">\(reader.scope.map { "Tenant \(HTML.escape($0)), " } ?? "")\(range.name): \(from.rfc3339) to \(to.rfc3339). "
            body += "Percentiles are exact (nearest rank) over the records that carry the figure, in milliseconds.</p>"
            body += "<form class=\"inline\" method=\"get\" action=\"/models\"><label for=\"range\">Range<select id=\"range\" name=\"range\">"
            for r in Self.ranges { body += "<option value=\"\(r.key)\"\(r.key == range.key ? " selected" : "")>\(r.name)</option>" }
            body += "</select></label><label for=\"metric\">Chart<select id=\"metric\" name=\"metric\">"
            for m in Self.latencyMetrics { body += "<option value=\"\(m.key)\"\(m.key == metric.key ? " selected" : "")>p95 \(m.name)</option>" }
            body += "</select></label><button type=\"submit\">Show</button></form>"

            func p(_ x: StatsRow.Percentiles?) -> [String] { [HTML.number(x?.p50), HTML.number(x?.p95), HTML.number(x?.p99)] }
            let rows = stats.rows.sorted { $0.requests != $1.requests ? $0.requests > $1.requests : ($0.group.first ?? "") ?? "" < ($1.group.first ?? "") ?? "" }
            let cells = rows.map { r -> [String] in
                let name = (r.group.first ?? nil) ?? ""
                let c = costByModel[name]
                return [HTML.escape(name), HTML.count(r.requests), HTML.number(r.errorRate * 100, 2) + "%",
                        c.map { HTML.money($0.costUSD) } ?? "—", c?.costPer1MTokensUSD.map(HTML.money) ?? "—"]
                    + p(r.ttftMS) + p(r.tpotMS) + p(r.e2eMS)
            }
            var headers: [(String, Bool)] = [("Model", false), ("Requests", true), ("Error rate", true), ("Usage cost", true), ("Per 1M tokens", true)]
            for m in ["TTFT", "TPOT", "E2E"] { headers += [("\(m) p50", true), ("\(m) p95", true), ("\(m) p99", true)] }
            body += HTML.table(id: "models", headers: headers, rows: cells,
                               empty: "No requests in the \(range.name). The serving fleet posts one record per request to POST /v1/usage.")

            // p95 of the chosen latency per bucket, for the busiest models.
            let top = rows.prefix(HTML.palette.count).compactMap { $0.group.first ?? nil }
            if !top.isEmpty {
                let series = try await self.stats.stats(CostQuery(from: from, to: to, groupBy: [.model, range.bucket], tenant: reader.scope))
                var labels: [String] = []
                var t = from
                while t < to {
                    labels.append(range.bucket == .hour ? String(t.rfc3339.prefix(13)) + ":00Z" : String(t.rfc3339.prefix(10)))
                    t = Timestamp(microseconds: t.microseconds + unit)
                }
                var values: [String: [String: Double]] = [:]
                for r in series.rows {
                    guard r.group.count == 2, let m = r.group[0], let b = r.group[1], let v = metric.value(r)?.p95 else { continue }
                    let label = range.bucket == .hour ? String(b.prefix(13)) + ":00Z" : String(b.prefix(10))
                    values[m, default: [:]][label] = v
                }
                body += "<h2>p95 \(metric.name) over time</h2>"
                body += HTML.lines(top.map { m in HTML.Series(name: m, values: labels.map { values[m]?[$0] }) }, labels: labels,
                                   title: "p95 \(metric.name) per \(range.bucket == .hour ? "hour" : "day") of the busiest models, \(range.name)",
                                   unit: { String(format: "%.0f ms", $0) })
                body += "<details><summary>The numbers (ms)</summary>"
                body += HTML.table(id: "latency-series", headers: [(range.bucket == .hour ? "Hour" : "Day", false)] + top.map { (HTML.escape($0), true) },
                                   rows: labels.reversed().filter { l in top.contains { values[$0]?[l] != nil } }.map { l in [l] + top.map { HTML.number(values[$0]?[l]) } })
                body += "</details>"
            }
            return Self.ok("Models", "/models", reader, body)
        }
    }
}
