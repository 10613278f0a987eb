import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import HTTPTypes
import Hummingbird

/// The Tenants page (a month's chargeback, sortable, with its CSV and FOCUS downloads) and a
/// tenant's page (its bill, daily spend, models and labels).
extension ConsoleController {
    /// A chargeback column: its query name, heading, whether numeric, and its sort value.
    struct Column: Sendable {
        var key: String
        var heading: String
        var numeric: Bool
        var value: @Sendable (Chargeback.TenantRow) -> Decimal?
    }

    static func tokens(_ t: Chargeback.TenantRow) -> Int64 { t.inputTokens + t.outputTokens }

    /// Total cost per million tokens (input and output), or nil without tokens.
    static func perMillionTokens(_ cost: Decimal, _ tokens: Int64) -> Decimal? {
        tokens > 0 ? CentRounding.rounded(cost * 1_000_000 / Decimal(tokens), scale: 6, .plain) : nil
    }

    static let chargebackColumns: [Column] = [
        Column(key: "tenant", heading: "Tenant", numeric: false, value: { _ in nil }),
        Column(key: "requests", heading: "Requests", numeric: true, value: { Decimal($0.requests) }),
        Column(key: "gpu_hours", heading: "GPU-hours", numeric: true, value: { $0.gpuSeconds }),
        Column(key: "usage", heading: "Usage", numeric: true, value: { $0.usageCost }),
        Column(key: "idle", heading: "Idle share", numeric: true, value: { $0.idleCost }),
        Column(key: "total", heading: "Total", numeric: true, value: { $0.totalCost }),
        Column(key: "tokens", heading: "Tokens", numeric: true, value: { Decimal(tokens($0)) }),
        Column(key: "per_1m", heading: "Per 1M tokens", numeric: true, value: { perMillionTokens($0.totalCost, tokens($0)) }),
    ]

    /// Whether the month is closed (its invoice id) and the corrections of closed months it bills.
    static func periodState(_ bill: Chargeback) -> String {
        var out = "<section id=\"period-state\">"
        if let invoice = bill.invoice {
            out += "<p><strong>Closed</strong>: invoice <code>\(HTML.escape(invoice.id))</code>, closed \(HTML.escape(invoice.closedAt.rfc3339)). "
            out += "These are the invoice's figures; later records and price changes for \(bill.period) are billed as corrections in the next open month.</p>"
        } else {
            out += "<p class=\"muted\">Open: the figures follow the ledger until the month is closed.</p>"
        }
        if !bill.corrections.isEmpty {
            out += HTML.table(id: "corrections", caption: "Corrections of closed months billed in \(bill.period)",
                              headers: [("Tenant", false), ("Corrects", false), ("Amount", true)],
                              rows: bill.corrections.map { [HTML.escape($0.tenant ?? "unallocated idle"), "\($0.period)", HTML.money($0.cost)] },
                              empty: "")
        }
        return out + "</section>"
    }

    static func gpuHours(_ seconds: Decimal) -> String {
        HTML.number(NSDecimalNumber(decimal: seconds).doubleValue / 3600, 2)
    }

    @Sendable func tenants(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Tenants", path: "/tenants") { reader in
            let params = try Query(request, allowed: ["period", "sort", "dir", "page"])
            let pageNumber = try params.integer("page", default: 1, range: 1...1_000_000)
            let period = try params.period(now: reader.now)
            let sortKey = params.get("sort") ?? "total"
            guard let column = Self.chargebackColumns.first(where: { $0.key == sortKey }) else {
                throw AppError.badRequest("sort=\(sortKey) is not one of \(Self.chargebackColumns.map(\.key).joined(separator: ", "))", code: "bad_query")
            }
            let dir = params.get("dir") ?? (column.numeric ? "desc" : "asc")
            guard dir == "asc" || dir == "desc" else { throw AppError.badRequest("dir=\(dir) is not asc or desc", code: "bad_query") }
            let bill = try await periods.chargeback(period: period, tenant: reader.scope, now: reader.now)
            var rows = bill.tenants
            rows.sort { a, b in
                let x = column.value(a), y = column.value(b)
                if x != y, column.key != "tenant" {
                    // Rows without the figure last either way.
                    guard let x else { return false }
                    guard let y else { return true }
                    return dir == "asc" ? x < y : x > y
                }
                return dir == "asc" || column.key != "tenant" ? a.tenant < b.tenant : a.tenant > b.tenant
            }
            var body = "<h1>Tenants</h1><p class=\"muted\">Chargeback for \(period) (UTC): each tenant's usage priced at the rate in force when it ran, "
            body += "plus its share of the paid-for idle GPU time of the pools it used. Cents add up to the bill.</p>"
            body += Self.monthPicker(period, action: "/tenants", extra: params.get("sort") == nil ? [] : [("sort", sortKey), ("dir", dir)])
            body += Self.periodState(bill)
            body += "<p><a href=\"/tenants/chargeback.csv?period=\(period)\" download>Download CSV</a> · "
            body += "<a href=\"/tenants/focus.csv?period=\(period)\" download>Download FinOps FOCUS</a></p>"
            let headers = Self.chargebackColumns.map { c -> (String, Bool) in
                let active = c.key == column.key
                let next = active ? (dir == "asc" ? "desc" : "asc") : (c.numeric ? "desc" : "asc")
                let arrow = active ? (dir == "asc" ? " ▲" : " ▼") : ""
                let sortState = active ? " aria-sort=\"\(dir == "asc" ? "ascending" : "descending")\"" : ""
                return ("<a href=\"/tenants?period=\(period)&amp;sort=\(c.key)&amp;dir=\(next)\"\(sortState)>\(c.heading)\(arrow)</a>", c.numeric)
            }
            let (shown, pager) = HTML.pages(count: rows.count, page: pageNumber) { "/tenants?period=\(period)&amp;sort=\(column.key)&amp;dir=\(dir)&amp;page=\($0)" }
            let cells = rows[shown].map { t -> [String] in
                [
                    "<a href=\"/tenants/\(HTML.escape(t.tenant))?period=\(period)\">\(HTML.escape(t.tenant))</a>",
                    HTML.count(t.requests), Self.gpuHours(t.gpuSeconds), HTML.money(t.usageCost), HTML.money(t.idleCost),
                    HTML.money(t.totalCost), HTML.count(Self.tokens(t)), Self.perMillionTokens(t.totalCost, Self.tokens(t)).map(HTML.money) ?? "—",
                ]
            }
            body += pager
            body += HTML.table(id: "chargeback", caption: "Sorted by \(column.heading.lowercased()), \(dir == "asc" ? "ascending" : "descending")",
                               headers: headers, rows: cells,
                               empty: "No usage in \(period)\(reader.scope.map { " for tenant \($0)" } ?? ""). Records posted to POST /v1/usage appear here.")
            body += pager
            if reader.manages {
                let f = bill.fleet
                body += "<section id=\"fleet\"><h2>The fleet's bill for \(period)</h2>"
                body += HTML.table(headers: [("Part", false), ("Amount", true)], rows: [
                    ["Provisioned GPU time (what the pools cost)", HTML.money(f.provisionedCost)],
                    ["Usage, priced per request", HTML.money(f.usageCost)],
                    ["Idle time shared out to tenants", HTML.money(f.idleCost)],
                    ["Idle time no tenant used that pool in (unallocated)", HTML.money(f.unallocatedIdleCost)],
                    ["<strong>Total</strong> (usage + idle shared out + unallocated)", "<strong>\(HTML.money(f.totalCost))</strong>"],
                    ["Of the usage, beyond the pools' provisioned GPUs (\(f.overCapacityPoolHours) pool-hours over capacity)", HTML.money(f.overCapacityCost)],
                ])
                body += "<p class=\"muted\">The tenants' totals plus the unallocated idle time equal the fleet's total: the pools' provisioned "
                body += "cost and the usage beyond it.</p></section>"
            }
            return Self.ok("Tenants", "/tenants", reader, body)
        }
    }

    /// The chargeback as a download, as `GET /v1/chargeback?format=csv|focus` answers it.
    func chargebackDownload(_ request: Request, context: AppRequestContext, format: String) async throws -> Response {
        try await page(request, context, title: "Tenants", path: "/tenants") { reader in
            let params = try Query(request, allowed: ["period"])
            let period = try params.period(now: reader.now)
            let bill = try await periods.chargeback(period: period, tenant: reader.scope, now: reader.now)
            return ChargebackAnswer.download(bill, format: format, configuration: configuration)
        }
    }

    @Sendable func tenant(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Tenant", path: "/tenants") { reader in
            let name = try context.parameters.require("tenant")
            guard UsageRecord.isValidTenant(name) else {
                throw AppError.notFound("There is no tenant named \(name): tenant names match ^[a-z0-9][a-z0-9._-]{0,62}$.")
            }
            _ = try Access.readScope(reader.principal, asked: name)
            let params = try Query(request, allowed: ["period", "label"])
            let period = try params.period(now: reader.now)
            let now = reader.now
            let to = min(period.end, max(now, period.start))
            let labelKey = params.get("label")
            let labelGroups = try labelKey.map { try GroupKey.parseList("label:" + $0) }
            // The page's reads are independent: they run at once, each on its own connection (on
            // two cores the label breakdown took the sum of the chargeback's and its own time).
            async let billRead = periods.chargeback(period: period, tenant: name, now: reader.now)
            async let dailyRead = costs.costs(CostQuery(from: period.start, to: to, groupBy: [.day], tenant: name))
            async let byModelRead = costs.costs(CostQuery(from: period.start, to: to, groupBy: [.model], tenant: name))
            // The label keys on its records of the window's last six hours: bounded work whatever
            // the tenant; any other key can be typed in.
            async let labelKeysRead = costs.labelKeys(tenant: name, from: max(period.start, to.adding(seconds: -6 * 3600)), to: to)
            async let byLabelRead: CostReport? = {
                guard let labelGroups else { return nil }
                return try await costs.costs(CostQuery(from: period.start, to: to, groupBy: labelGroups, tenant: name))
            }()
            let bill = try await billRead, daily = try await dailyRead, byModel = try await byModelRead
            let labelKeys = try await labelKeysRead, byLabelReport = try await byLabelRead

            var body = "<h1>Tenant \(HTML.escape(name))</h1>"
            body += Self.monthPicker(period, action: "/tenants/\(HTML.escape(name))")
            body += Self.periodState(bill)
            let row = bill.tenants.first ?? Chargeback.TenantRow(tenant: name)
            body += "<div class=\"cards\">"
            body += "<section class=\"card\" id=\"tenant-total\"><h2>Total for \(period)</h2><div class=\"big\">\(HTML.money(row.totalCost))</div>"
            body += "<div class=\"muted\">usage \(HTML.money(row.usageCost)) + idle share \(HTML.money(row.idleCost))"
            if row.correctionCost != 0 { body += " + corrections of closed months \(HTML.money(row.correctionCost))" }
            body += "</div></section>"
            body += "<section class=\"card\" id=\"tenant-requests\"><h2>Requests</h2><div class=\"big\">\(HTML.count(row.requests))</div>"
            body += "<div class=\"muted\">\(HTML.count(row.errors)) errors · \(Self.gpuHours(row.gpuSeconds)) GPU-hours</div></section>"
            body += "<section class=\"card\" id=\"tenant-per-1m\"><h2>Per 1M tokens</h2><div class=\"big\">\(Self.perMillionTokens(row.totalCost, Self.tokens(row)).map(HTML.money) ?? "—")</div>"
            body += "<div class=\"muted\">\(HTML.count(Self.tokens(row))) tokens in and out</div></section></div>"
            if row.requests == 0 {
                body += "<div class=\"empty\"><p>No usage recorded for \(HTML.escape(name)) in \(period). Pick another month, or check that the serving fleet posts this tenant's records to <code>POST /v1/usage</code>.</p></div>"
            }

            // Daily usage cost over the month.
            body += "<h2>Usage cost per day</h2>" + Self.dailySpend(daily, from: period.start, to: period.end, title: "Usage cost of \(name) per day in \(period)",
                                                                     id: "tenant-daily", empty: "No usage this month.")

            body += "<h2>Models</h2>"
            body += HTML.table(id: "tenant-models", headers: [("Model", false), ("Requests", true), ("Errors", true), ("Usage cost", true), ("Per 1M tokens", true)],
                               rows: byModel.rows.sorted { Self.decimal($0.costUSD) > Self.decimal($1.costUSD) }.map { r in
                                   [HTML.escape((r.group.first ?? nil) ?? "—"), HTML.count(r.requests), HTML.count(r.errors),
                                    HTML.money(r.costUSD), r.costPer1MTokensUSD.map(HTML.money) ?? "—"]
                               }, empty: "No usage this month.")

            body += "<h2>Labels</h2>"
            body += "<form class=\"inline\" method=\"get\" action=\"/tenants/\(HTML.escape(name))\"><input type=\"hidden\" name=\"period\" value=\"\(period)\">"
            body += "<label for=\"label\">Break the usage cost down by label<input id=\"label\" name=\"label\" value=\"\(HTML.escape(params.get("label") ?? ""))\" required></label>"
            body += "<button type=\"submit\">Break down</button></form>"
            body += "<p class=\"muted\">The breakdown reads the hourly label summary, and the records of the current hour and of hours not summarized yet; a key with more than 1,000 values in an hour is read from that hour's records.</p>"
            if labelKeys.isEmpty {
                body += "<p class=\"muted\">Its latest records carry no labels (records may carry a <code>labels</code> object, such as team or feature).</p>"
            } else {
                body += "<p>Keys on its latest records: " + labelKeys.map { k in
                    "<a href=\"/tenants/\(HTML.escape(name))?period=\(period)&amp;label=\(HTML.escape(k.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? k))\"\(params.get("label") == k ? " aria-current=\"true\"" : "")>\(HTML.escape(k))</a>"
                }.joined(separator: " · ") + "</p>"
            }
            if let key = labelKey, let byLabel = byLabelReport {
                body += HTML.table(id: "tenant-labels", caption: "Usage cost by label \(key)", headers: [(HTML.escape(key), false), ("Requests", true), ("Usage cost", true)],
                                   rows: byLabel.rows.sorted { Self.decimal($0.costUSD) > Self.decimal($1.costUSD) }.map { r in
                                       [(r.group.first ?? nil).map(HTML.escape) ?? "<span class=\"muted\">(no \(HTML.escape(key)))</span>", HTML.count(r.requests), HTML.money(r.costUSD)]
                                   }, empty: "No usage this month.")
            }
            return Self.ok("Tenant \(name)", "/tenants", reader, body)
        }
    }
}
