import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import HTTPTypes
import Hummingbird

extension ConsoleController {
    // MARK: - Overview

    static func decimal(_ s: String) -> Decimal { CentRounding.decimal(s) ?? 0 }

    /// A report grouped by day as a bar chart of each day in `[from, to)` and, under "The
    /// numbers", a table of the days with spend, newest first.
    static func dailySpend(_ report: CostReport, from: Timestamp, to: Timestamp, title: String, id: String, empty: String) -> String {
        var byDay: [String: String] = [:]
        for row in report.rows { if let d = row.group.first ?? nil { byDay[d] = row.costUSD } }
        var points: [(label: String, exact: String)] = []
        var d = from
        while d < to {
            let label = String(d.rfc3339.prefix(10))
            points.append((label, byDay[label] ?? "0"))
            d = d.adding(seconds: 86_400)
        }
        let chart = HTML.bars(points.map { ($0.label, NSDecimalNumber(decimal: decimal($0.exact)).doubleValue) }, title: title)
        return chart + "<details><summary>The numbers</summary>"
            + HTML.table(id: id, headers: [("Day", false), ("Usage cost", true)],
                         rows: points.reversed().filter { $0.exact != "0" }.map { [$0.label, HTML.money($0.exact)] }, empty: empty)
            + "</details>"
    }

    @Sendable func overview(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Overview", path: "/") { reader in try await overview(reader, context) }
    }

    func overview(_ reader: Reader, _ context: AppRequestContext) async throws -> Response {
        let scope = reader.scope
        let now = reader.now
        let period = Period.containing(now)
        let month = period.start
        let day = Timestamp.day
        let today = now.dayStart
        let ninetyDays = Timestamp(microseconds: today.microseconds - 89 * day)

        let monthDays = Int((period.end.microseconds - today.microseconds) / day)
        let logger = context.logger
        // The page's reads are independent: they run at once, each on its own connection, as on
        // the tenant, Models and Capacity pages.
        async let byTenantRead = costs.costs(CostQuery(from: month, to: now, groupBy: [.tenant], tenant: scope))
        async let byModelRead = costs.costs(CostQuery(from: month, to: now, groupBy: [.model], tenant: scope))
        async let dailyRead = costs.costs(CostQuery(from: ninetyDays, to: now, groupBy: [.day], tenant: scope))
        async let beforeTodayRead: String = {
            guard today > month else { return "0" }
            return try await costs.costs(CostQuery(from: month, to: today, groupBy: [], tenant: scope)).total.costUSD
        }()
        // The page stands without its forecast card; a failure is logged, not hidden.
        async let forecastRead: PlanningStore.SpendForecast? = {
            do {
                return try await planning.forecastSpend(tenant: scope, model: nil, horizon: max(monthDays, 1), level: 0.8, asOf: now)
            } catch {
                logger.warning("overview: no month forecast", metadata: ["error": .string(String(describing: error))])
                return nil
            }
        }()
        async let statusesRead = self.statuses(try await budgets.list(tenant: scope), now: now)
        let byTenant = try await byTenantRead, byModel = try await byModelRead, daily = try await dailyRead
        let beforeToday = try await beforeTodayRead, forecast = await forecastRead
        let (statuses, statusesAt) = try await statusesRead
        let atRisk = statuses.filter { $0.state == .at_risk || $0.state == .exceeded }

        var body = "<h1>Overview</h1><p class=\"muted\">\(scope.map { "Tenant \(HTML.escape($0)), " } ?? "")month to date: \(month.rfc3339.prefix(10)) to now (UTC)</p>"
        let total = byTenant.total
        if total.requests == 0 && daily.total.requests == 0 {
            body += """
                <div class="empty"><h2>No usage yet</h2><p>Nothing has been recorded in the last 90 days\(scope == nil ? "" : " for this tenant").
                Post usage records to <code>POST /v1/usage</code> with an ingest or admin key, for example:</p>
                <pre>curl -X POST http://HOST:8080/v1/usage -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
                  -d '{"request_id":"req-1","tenant":"acme","model":"llama-3.1-70b","accelerator":"H100",
                       "started_at":"2026-11-28T10:00:00Z","gpu_seconds":2.5,"input_tokens":1200,"output_tokens":300}'</pre>
                <p>or a file with <code>gpuledger ingest usage.ndjson</code>. The figures appear here as soon as a batch is acknowledged.</p></div>
                """
        }
        body += "<div class=\"cards\">"
        body += "<section class=\"card\" id=\"mtd\"><h2>Spent this month</h2><div class=\"big\">\(HTML.money(total.costUSD))</div>"
        body += "<div class=\"muted\">\(HTML.count(total.requests)) requests, usage cost (idle share in the chargeback)</div></section>"
        if let forecast {
            let base = Self.decimal(beforeToday)
            func plus(_ d: Decimal) -> String { "\(base + d)" }
            body += "<section class=\"card\" id=\"forecast\"><h2>Month forecast (p50, 80% interval)</h2><div class=\"big\">\(HTML.money(plus(forecast.total.p50)))</div>"
            body += "<div class=\"muted\">\(HTML.money(plus(forecast.total.lower))) to \(HTML.money(plus(forecast.total.upper)))</div>"
            body += "<details class=\"muted\"><summary>Method</summary>\(HTML.escape(forecast.method))</details></section>"
        }
        body += "<section class=\"card\" id=\"budgets-at-risk\"><h2>Budgets at risk or exceeded</h2><div class=\"big\">\(atRisk.count) of \(statuses.count)</div><div class=\"muted\">as of \(Self.clock(statusesAt)) · <a href=\"/budgets\">all budgets</a></div></section>"
        body += "</div>"

        // Spend per day, 90 days: a chart and its numbers.
        body += "<h2>Spend per day, last 90 days</h2>" + Self.dailySpend(
            daily, from: ninetyDays, to: today.adding(seconds: 86_400), title: "Usage cost per day, \(ninetyDays.rfc3339.prefix(10)) to \(today.rfc3339.prefix(10))",
            id: "daily", empty: "No usage in the last 90 days.")

        func top(_ report: CostReport, _ name: String, _ id: String, link: (String) -> String) -> String {
            let rows = report.rows.sorted { Self.decimal($0.costUSD) > Self.decimal($1.costUSD) }.prefix(10)
            return "<section id=\"\(id)\"><h2>Top \(name)s this month</h2>" + HTML.table(
                headers: [(name.capitalized, false), ("Requests", true), ("Cost", true), ("Per 1M tokens", true)],
                rows: rows.map { r in
                    [link((r.group.first ?? nil) ?? "—"), HTML.count(r.requests), HTML.money(r.costUSD), r.costPer1MTokensUSD.map(HTML.money) ?? "—"]
                }, empty: "No usage this month yet.") + "</section>"
        }
        if scope == nil {
            body += top(byTenant, "tenant", "top-tenants") { "<a href=\"/tenants/\(HTML.escape($0))\">\(HTML.escape($0))</a>" }
        }
        body += top(byModel, "model", "top-models") { HTML.escape($0) }

        body += "<section id=\"budgets\"><h2>Budgets at risk</h2>"
        if atRisk.isEmpty {
            body += statuses.isEmpty
                ? "<p class=\"muted\">No budgets yet. Finance and admin keys create them on the <a href=\"/budgets\">Budgets</a> page or with <code>PUT /v1/budgets/{name}</code>.</p>"
                : "<p>None: every budget is within its amount and forecast.</p>"
        } else {
            body += HTML.table(headers: [("Budget", false), ("State", false), ("Spent", true), ("Amount", true), ("Forecast p50", true), ("Exhausts", false)],
                               rows: atRisk.map { s in
                                   [Self.budgetLink(s.budget.name), "<span class=\"\(s.state.rawValue)\">\(Self.stateText(s.state))</span>",
                                    HTML.money(s.spent), HTML.money(s.budget.amount), HTML.money(s.forecastP50), s.projectedExhaustionDate ?? "—"]
                               })
        }
        body += "</section>"
        return Self.ok("Overview", "/", reader, body)
    }
}
