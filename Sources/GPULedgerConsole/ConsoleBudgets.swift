import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import HTTPTypes
import Hummingbird

/// The Budgets pages: every budget's standing, one budget's burn-up against its amount and
/// forecast band, and (admin and finance keys) the form that creates, edits and deletes them,
/// checked by the same rules as `PUT /v1/budgets/{name}`.
extension ConsoleController {
    static func stateText(_ s: Budget.State) -> String { s.rawValue.replacingOccurrences(of: "_", with: " ") }

    static func budgetLink(_ name: String) -> String {
        "<a href=\"/budgets/\(HTML.escape(name))\">\(HTML.escape(name))</a>"
    }

    /// A bar showing spent against the amount (capped at the full width).
    static func meter(_ s: BudgetStatus) -> String {
        let ratio = s.budget.amount > 0 ? NSDecimalNumber(decimal: s.spent / s.budget.amount).doubleValue : 0
        let percent = Int((ratio * 100).rounded())
        return "<span class=\"meter\" role=\"img\" aria-label=\"\(percent)% spent\" title=\"\(percent)% spent\"><b class=\"\(s.state.rawValue)\" style=\"width:\(min(max(percent, 0), 100))%\"></b></span> \(percent)%"
    }

    @Sendable func budgetList(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Budgets", path: "/budgets") { reader in
            let params = try Query(request, allowed: ["page"])
            let pageNumber = try params.integer("page", default: 1, range: 1...1_000_000)
            let list = try await budgets.list(tenant: reader.scope)
            let now = reader.now
            let (statuses, at) = try await self.statuses(list, now: now)
            var body = "<h1>Budgets</h1><p class=\"muted\">Spend summed from the ledger for each budget's calendar period (UTC), and where the forecast "
            body += "puts the period's end. <em>At risk</em>: the forecast's median is over the amount before it is spent. As of \(Self.clock(at)).</p>"
            if reader.manages { body += "<p><a href=\"/budgets/new\">New budget</a></p>" }
            let order: [Budget.State] = [.exceeded, .at_risk, .warning, .ok]
            let sorted = statuses.sorted {
                let a = order.firstIndex(of: $0.state)!, b = order.firstIndex(of: $1.state)!
                return a != b ? a < b : $0.budget.name < $1.budget.name
            }
            let (shown, pager) = HTML.pages(count: sorted.count, page: pageNumber) { "/budgets?page=\($0)" }
            let counts = order.map { state in (state, sorted.filter { $0.state == state }.count) }.filter { $0.1 > 0 }
            if !counts.isEmpty { body += "<p>" + counts.map { "\($0.1) \(Self.stateText($0.0))" }.joined(separator: " · ") + "</p>" }
            body += pager
            body += HTML.table(id: "budget-list", headers: [
                ("Budget", false), ("Tenant", false), ("Period", false), ("Amount", true), ("Spent", true), ("Spent so far", false),
                ("Forecast p50", true), ("p10 to p90", true), ("State", false), ("Exhausts", false),
            ], rows: sorted[shown].map { s in
                [Self.budgetLink(s.budget.name), s.budget.tenant.map(HTML.escape) ?? "<span class=\"muted\">whole fleet</span>",
                 "\(s.budget.period.rawValue), \(s.budget.basis.rawValue)", HTML.money(s.budget.amount), HTML.money(s.spent), Self.meter(s),
                 HTML.money(s.forecastP50), "\(HTML.money(s.forecastP10)) to \(HTML.money(s.forecastP90))",
                 "<span class=\"\(s.state.rawValue)\">\(Self.stateText(s.state))</span>", s.projectedExhaustionDate ?? "—"]
            }, empty: reader.manages ? "No budgets yet. Create one with New budget, or PUT /v1/budgets/{name}." : "No budgets for this tenant yet; finance creates them.")
            body += pager
            return Self.ok("Budgets", "/budgets", reader, body)
        }
    }

    @Sendable func budgetPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Budget", path: "/budgets") { reader in
            _ = try Query(request, allowed: [])
            let name = try PathName.budget(context)
            guard let budget = try await budgets.get(name) else { throw AppError.notFound("no budget \(name)") }
            try Access.requireVisible(budget, to: reader.principal)
            let now = reader.now
            guard let s = try await planning.statuses([budget], at: now, burnUp: true).first else { throw AppError.notFound("no budget \(name)") }
            var body = "<h1>Budget \(HTML.escape(name))</h1>"
            body += "<p class=\"muted\">\(budget.tenant.map { "Tenant \(HTML.escape($0))" } ?? "The whole fleet"), \(budget.period.rawValue) "
            body += "(\(s.periodStart.rfc3339.prefix(10)) to \(s.periodEnd.rfc3339.prefix(10)), UTC), "
            body += budget.basis == .total ? "usage cost plus idle share" : "usage cost"
            body += ". Thresholds: \(budget.thresholds.map { "\(Int(truncating: NSDecimalNumber(decimal: $0 * 100)))%" }.joined(separator: ", ")).</p>"
            if reader.manages { body += "<p><a href=\"/budgets/\(HTML.escape(name))/edit\">Edit or delete</a></p>" }
            body += "<div class=\"cards\">"
            body += "<section class=\"card\" id=\"budget-state\"><h2>State</h2><div class=\"big \(s.state.rawValue)\">\(Self.stateText(s.state))</div>"
            body += "<div class=\"muted\">\(s.thresholdsCrossed.isEmpty ? "no threshold crossed" : "crossed " + s.thresholdsCrossed.map { "\(Int(truncating: NSDecimalNumber(decimal: $0 * 100)))%" }.joined(separator: ", "))</div></section>"
            body += "<section class=\"card\" id=\"budget-spent\"><h2>Spent</h2><div class=\"big\">\(HTML.money(s.spent))</div>"
            body += "<div class=\"muted\">of \(HTML.money(budget.amount)) · \(Self.meter(s))</div></section>"
            body += "<section class=\"card\" id=\"budget-forecast\"><h2>Forecast for the period</h2><div class=\"big\">\(HTML.money(s.forecastP50))</div>"
            body += "<div class=\"muted\">p10 \(HTML.money(s.forecastP10)) to p90 \(HTML.money(s.forecastP90))</div></section>"
            body += "<section class=\"card\" id=\"budget-exhaustion\"><h2>Projected exhaustion</h2><div class=\"big\">\(s.projectedExhaustionDate ?? "not this period")</div></section>"
            body += "</div>"

            // The burn-up: cumulative spend by day, then the forecast band to the period's end.
            let day = Timestamp.day
            var labels: [String] = []
            var d = s.periodStart
            while d < s.periodEnd { labels.append(String(d.rfc3339.prefix(10))); d = Timestamp(microseconds: d.microseconds + day) }
            let todayLabel = String(now.rfc3339.prefix(10))
            var actual: [Double?] = [], lower: [Double?] = [], median: [Double?] = [], upper: [Double?] = []
            var exactByDay: [String: Decimal] = [:]
            for a in s.burnUp?.actual ?? [] { exactByDay[a.day] = a.cumulative }
            var forecastByDay: [String: BurnUp.Point] = [:]
            for f in s.burnUp?.forecast ?? [] { forecastByDay[f.day] = f }
            var running: Decimal = 0
            var table: [[String]] = []
            func dbl(_ x: Decimal) -> Double { NSDecimalNumber(decimal: x).doubleValue }
            for label in labels {
                if label <= todayLabel {
                    running = exactByDay[label] ?? running
                    actual.append(dbl(running))
                } else {
                    actual.append(nil)
                }
                if let f = forecastByDay[label] {
                    lower.append(dbl(f.p10)); median.append(dbl(f.p50)); upper.append(dbl(f.p90))
                    table.append([label, label <= todayLabel ? HTML.money(running) : "—", HTML.money(f.p50), "\(HTML.money(f.p10)) to \(HTML.money(f.p90))"])
                } else {
                    lower.append(nil); median.append(nil); upper.append(nil)
                    if label <= todayLabel { table.append([label, HTML.money(running), "—", "—"]) }
                }
            }
            // The forecast starts from today's spend so far.
            if let i = labels.firstIndex(of: todayLabel), i > 0, median[i] != nil, actual[i - 1] != nil, median[i - 1] == nil {
                lower[i - 1] = actual[i - 1]; median[i - 1] = actual[i - 1]; upper[i - 1] = actual[i - 1]
            }
            body += "<h2>Burn-up</h2>"
            body += HTML.lines([HTML.Series(name: "Spent (cumulative)", values: actual),
                                HTML.Series(name: "Forecast p50", values: median, dashed: true, color: "#c2571a")],
                               labels: labels, title: "Cumulative spend of budget \(name) against its amount, with the forecast to the period's end",
                               unit: HTML.compactDollars,
                               band: ("Forecast p10 to p90", lower, upper), reference: ("Amount", dbl(budget.amount)))
            body += "<details><summary>The numbers</summary>"
            body += HTML.table(id: "burn-up", headers: [("Day", false), ("Spent by day's end", true), ("Forecast p50", true), ("p10 to p90", true)], rows: table.reversed())
            body += "</details><p class=\"muted\">\(HTML.escape(s.method))</p>"
            return Self.ok("Budget \(name)", "/budgets", reader, body)
        }
    }

    // MARK: - Editing (admin and finance)

    /// The form's fields, as typed.
    struct BudgetFields {
        var name = "", tenant = "", period = "monthly", amount = "", thresholds = "0.5, 0.8, 1", basis = "usage"

        init() {}
        init(_ b: Budget) {
            name = b.name; tenant = b.tenant ?? ""; period = b.period.rawValue; amount = CentRounding.amount(b.amount)
            thresholds = b.thresholds.map { "\($0)" }.joined(separator: ", "); basis = b.basis.rawValue
        }
        init(_ form: [String: String]) {
            name = form["name"] ?? ""; tenant = form["tenant"] ?? ""; period = form["period"] ?? ""; amount = form["amount_usd"] ?? ""
            thresholds = form["thresholds"] ?? ""; basis = form["basis"] ?? ""
        }

        /// The `PUT /v1/budgets/{name}` body these fields stand for.
        func object() -> [String: Any] {
            var o: [String: Any] = ["period": period.trimmingCharacters(in: .whitespaces), "amount_usd": amount.trimmingCharacters(in: .whitespaces),
                                    "basis": basis.trimmingCharacters(in: .whitespaces)]
            let t = tenant.trimmingCharacters(in: .whitespaces)
            o["tenant"] = t.isEmpty ? NSNull() : t
            let items = thresholds.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            // An item that is not a number stays a string, which the rules refuse by name.
            o["thresholds"] = items.map { item -> Any in Double(item).map { NSNumber(value: $0) } ?? item }
            return o
        }
    }

    func requireManager(_ reader: Reader) throws {
        guard reader.manages else { throw AppError.forbidden("Only admin and finance keys create, edit and delete budgets.") }
    }

    /// A posted form, refused (403, nothing done) without the session's CSRF token.
    func verifiedForm(_ request: Request, _ reader: Reader) async throws -> [String: String] {
        let form = try await Self.form(request)
        guard FormData.constantTimeEqual(reader.session.csrfToken, form["csrf"] ?? "") else {
            throw AppError.forbidden("This form did not come from this site (its CSRF token is missing or wrong); nothing was changed.")
        }
        return form
    }

    static func budgetFormBody(_ fields: BudgetFields, editing: Bool, csrf: String, errors: [AppError.Detail] = [], message: String? = nil) -> String {
        func error(_ field: String) -> String {
            let messages = errors.filter { $0.field == field }.map { HTML.escape($0.message) }
            return messages.isEmpty ? "" : "<span class=\"refused\" id=\"\(field)-error\">\(messages.joined(separator: "; "))</span>"
        }
        func invalid(_ field: String) -> String {
            errors.contains { $0.field == field } ? " aria-invalid=\"true\" aria-describedby=\"\(field)-error\"" : ""
        }
        func option(_ value: String, _ current: String) -> String {
            "<option value=\"\(value)\"\(value == current ? " selected" : "")>\(value)</option>"
        }
        var body = "<h1>\(editing ? "Edit budget \(HTML.escape(fields.name))" : "New budget")</h1>"
        if let message { body += "<p role=\"alert\" class=\"refused\" id=\"form-error\">\(HTML.escape(message))</p>" }
        body += "<form method=\"post\" action=\"/budgets\"><input type=\"hidden\" name=\"csrf\" value=\"\(HTML.escape(csrf))\">"
        body += "<input type=\"hidden\" name=\"mode\" value=\"\(editing ? "edit" : "create")\">"
        if editing {
            body += "<input type=\"hidden\" name=\"name\" value=\"\(HTML.escape(fields.name))\">"
        } else {
            body += "<p><label for=\"name\">Name</label><br><input id=\"name\" name=\"name\" value=\"\(HTML.escape(fields.name))\" required maxlength=\"128\"\(invalid("name"))> \(error("name"))"
            body += "<br><span class=\"muted\">Letters, digits, '.', '_' and '-'.</span></p>"
        }
        body += "<p><label for=\"tenant\">Tenant</label><br><input id=\"tenant\" name=\"tenant\" value=\"\(HTML.escape(fields.tenant))\"\(invalid("tenant"))> \(error("tenant"))"
        body += "<br><span class=\"muted\">Empty for the whole fleet.</span></p>"
        body += "<p><label for=\"period\">Period</label><br><select id=\"period\" name=\"period\"\(invalid("period"))>"
        body += Budget.Cadence.allCases.map { option($0.rawValue, fields.period) }.joined() + "</select> \(error("period"))</p>"
        body += "<p><label for=\"amount_usd\">Amount (USD)</label><br><input id=\"amount_usd\" name=\"amount_usd\" value=\"\(HTML.escape(fields.amount))\" inputmode=\"decimal\" required\(invalid("amount_usd"))> \(error("amount_usd"))</p>"
        body += "<p><label for=\"thresholds\">Thresholds (fractions of the amount)</label><br><input id=\"thresholds\" name=\"thresholds\" value=\"\(HTML.escape(fields.thresholds))\"\(invalid("thresholds"))> \(error("thresholds"))</p>"
        body += "<p><label for=\"basis\">Basis</label><br><select id=\"basis\" name=\"basis\"\(invalid("basis"))>"
        body += option("usage", fields.basis) + option("total", fields.basis) + "</select> \(error("basis"))"
        body += "<br><span class=\"muted\">usage: usage cost; total: usage plus the idle share.</span></p>"
        body += "<p><button type=\"submit\">\(editing ? "Save" : "Create")</button> <a href=\"/budgets\">Cancel</a></p></form>"
        if editing {
            body += "<form method=\"post\" action=\"/budgets/\(HTML.escape(fields.name))/delete\"><input type=\"hidden\" name=\"csrf\" value=\"\(HTML.escape(csrf))\">"
            body += "<p><button type=\"submit\">Delete this budget</button></p></form>"
        }
        return body
    }

    @Sendable func budgetForm(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Budget", path: "/budgets") { reader in
            _ = try Query(request, allowed: [])
            try requireManager(reader)
            var fields = BudgetFields()
            let editing = context.parameters.get("name") != nil
            if editing {
                let name = try PathName.budget(context)
                guard let b = try await budgets.get(name) else { throw AppError.notFound("no budget \(name)") }
                fields = BudgetFields(b)
            }
            return Self.ok(editing ? "Edit budget" : "New budget", "/budgets", reader,
                           Self.budgetFormBody(fields, editing: editing, csrf: reader.session.csrfToken))
        }
    }

    @Sendable func budgetSave(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Budget", path: "/budgets") { reader in
            try requireManager(reader)
            let form = try await verifiedForm(request, reader)
            let fields = BudgetFields(form)
            let editing = form["mode"] == "edit"
            func again(_ status: HTTPResponse.Status, _ message: String, _ errors: [AppError.Detail]) -> Response {
                Self.ok(editing ? "Edit budget" : "New budget", "/budgets", reader,
                        Self.budgetFormBody(fields, editing: editing, csrf: reader.session.csrfToken, errors: errors, message: message), status: status)
            }
            guard Budget.validName(fields.name) else {
                return again(.unprocessableContent, "The budget is invalid; nothing was changed.",
                             [.init(field: "name", message: "1 to 128 characters: letters, digits, '.', '_', '-', starting with a letter or digit")])
            }
            let budget: Budget
            do {
                budget = try Budget.parse(name: fields.name, fields.object())
            } catch let error as InvalidInput {
                return again(.unprocessableContent, error.message.prefix(1).uppercased() + error.message.dropFirst() + ".",
                             error.problems.map { AppError.Detail(field: $0.field, message: $0.message) })
            }
            let existing = try await budgets.get(fields.name)
            if !editing && existing != nil {
                return again(.conflict, "A budget named \(fields.name) exists already; nothing was changed. Edit it from its page, or pick another name.", [])
            }
            if editing && existing == nil {
                return again(.notFound, "There is no budget \(fields.name) any more (deleted meanwhile?); nothing was changed.", [])
            }
            _ = try await budgets.put(budget)
            context.logger.info("console: budget saved", metadata: ["budget": .string(budget.name), "key_id": .stringConvertible(reader.principal.keyID)])
            return Self.redirect("/budgets/\(budget.name)")
        }
    }

    @Sendable func budgetDelete(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Budget", path: "/budgets") { reader in
            try requireManager(reader)
            _ = try await verifiedForm(request, reader)
            let name = try PathName.budget(context)
            guard try await budgets.delete(name) else { throw AppError.notFound("no budget \(name)") }
            context.logger.info("console: budget deleted", metadata: ["budget": .string(name), "key_id": .stringConvertible(reader.principal.keyID)])
            return Self.redirect("/budgets")
        }
    }
}
