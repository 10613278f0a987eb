import Foundation
import GPULedgerCore
import GPULedgerStore
import HTTPTypes
import Hummingbird

/// The web console: sign-in with an API key (turned into a session cookie), sign-out, and the
/// pages, rendered on the server from the same stores the API answers from.
struct ConsoleController {
    let keys: KeyStore
    let sessions: SessionStore
    let costs: CostStore
    let budgets: BudgetStore
    let planning: PlanningStore

    static let sessionCookie = "gpl_session"
    static let signinCookie = "gpl_signin"
    static let lifetime: Duration = .seconds(12 * 3600)

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/", use: overview)
        router.get("signin", use: signinForm)
        router.post("signin", use: signin)
        router.post("signout", use: signout)
    }

    // MARK: - Sessions

    /// `Secure` when the request came over TLS (a proxy in front says so in `X-Forwarded-Proto`).
    static func cookie(_ name: String, _ value: String, path: String = "/", maxAge: Int, request: Request) -> String {
        let secure = request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https" ? "; Secure" : ""
        return "\(name)=\(value); Path=\(path); Max-Age=\(maxAge); HttpOnly; SameSite=Strict\(secure)"
    }

    static func html(_ body: String, status: HTTPResponse.Status = .ok, cookies: [String] = []) -> Response {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]
        headers[HTTPField.Name("Content-Security-Policy")!] = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        for c in cookies { headers.append(HTTPField(name: .setCookie, value: c)) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func redirect(_ location: String, cookies: [String] = []) -> Response {
        var headers: HTTPFields = [.location: location, .cacheControl: "no-store"]
        for c in cookies { headers.append(HTTPField(name: .setCookie, value: c)) }
        return Response(status: .seeOther, headers: headers)
    }

    func session(_ request: Request) async throws -> (token: String, session: SessionStore.Session)? {
        guard let token = FormData.cookies(request.headers[.cookie])[Self.sessionCookie],
              let session = try await sessions.find(token) else { return nil }
        return (token, session)
    }

    static func form(_ request: Request) async throws -> [String: String] {
        let media = request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard media == "application/x-www-form-urlencoded" else { return [:] }
        let body = try await request.body.collect(upTo: 64 * 1024)
        return FormData.parse(String(buffer: body))
    }

    @Sendable func signinForm(_ request: Request, context: AppRequestContext) async throws -> Response {
        if try await session(request) != nil { return Self.redirect("/") }
        let nonce = SessionStore.randomToken()
        return Self.html(Self.signinPage(nonce: nonce, message: nil),
                         cookies: [Self.cookie(Self.signinCookie, nonce, path: "/signin", maxAge: 1800, request: request)])
    }

    static func signinPage(nonce: String, message: String?) -> String {
        HTML.page(title: "Sign in", current: "/signin", session: nil, body: """
            <h1>Sign in</h1>
            \(message.map { "<p role=\"alert\" class=\"exceeded\">\(HTML.escape($0))</p>" } ?? "")
            <form method="post" action="/signin">
            <input type="hidden" name="csrf" value="\(HTML.escape(nonce))">
            <p><label for="key">API key</label><br><input id="key" name="key" type="password" autocomplete="current-password" size="70" required autofocus></p>
            <p><button type="submit">Sign in</button></p>
            </form>
            <p class="muted">Use a key from <code>gpuledger keys create</code> (the first admin key is in <code>.gpuledger/admin.key</code>).
            The key is checked once and kept only as a session cookie's reference on the server; the page never shows it.</p>
            """)
    }

    @Sendable func signin(_ request: Request, context: AppRequestContext) async throws -> Response {
        let form = try await Self.form(request)
        let nonce = FormData.cookies(request.headers[.cookie])[Self.signinCookie] ?? ""
        guard !nonce.isEmpty, FormData.constantTimeEqual(nonce, form["csrf"] ?? "") else {
            return Self.html(Self.errorPage("This sign-in form is stale or did not come from this site. Open the sign-in page again."), status: .forbidden)
        }
        let fresh = SessionStore.randomToken()
        let retry = [Self.cookie(Self.signinCookie, fresh, path: "/signin", maxAge: 1800, request: request)]
        guard let key = form["key"]?.trimmingCharacters(in: .whitespacesAndNewlines), let principal = try await keys.authenticate(key) else {
            return Self.html(Self.signinPage(nonce: fresh, message: "Unknown or revoked API key."), status: .unauthorized, cookies: retry)
        }
        let (token, _) = try await sessions.create(principal: principal, lifetime: Self.lifetime)
        context.logFields["key_id"] = "\(principal.keyID)"
        return Self.redirect("/", cookies: [Self.cookie(Self.sessionCookie, token, maxAge: Int(Self.lifetime.components.seconds), request: request),
                                            Self.cookie(Self.signinCookie, "", path: "/signin", maxAge: 0, request: request)])
    }

    @Sendable func signout(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let (token, session) = try await session(request) else { return Self.redirect("/signin") }
        let form = try await Self.form(request)
        guard FormData.constantTimeEqual(session.csrfToken, form["csrf"] ?? "") else {
            return Self.html(Self.errorPage("This form did not come from this site (its CSRF token is missing or wrong); nothing was done."), status: .forbidden)
        }
        try await sessions.delete(token)
        return Self.redirect("/signin", cookies: [Self.cookie(Self.sessionCookie, "", maxAge: 0, request: request)])
    }

    static func errorPage(_ message: String) -> String {
        HTML.page(title: "Refused", current: "", session: nil, body: "<h1>Refused</h1><p role=\"alert\">\(HTML.escape(message))</p><p><a href=\"/signin\">Sign in</a></p>")
    }

    // MARK: - Overview

    static func monthStart(_ t: Timestamp) -> Timestamp {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = Date(timeIntervalSince1970: Double(t.microseconds) / 1e6)
        let start = calendar.date(from: calendar.dateComponents([.year, .month], from: date))!
        return Timestamp(secondsSince1970: Int64(start.timeIntervalSince1970))
    }

    static func decimal(_ s: String) -> Decimal { Decimal(string: s, locale: Locale(identifier: "en_US_POSIX")) ?? 0 }

    @Sendable func overview(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let (_, session) = try await session(request) else { return Self.redirect("/signin") }
        let principal = session.principal
        if principal.role == .ingest {
            return Self.html(HTML.page(title: "Overview", current: "/", session: session,
                                       body: "<h1>Overview</h1><p role=\"alert\">An ingest key writes usage; it cannot read reports. Sign in with a finance, tenant or admin key.</p>"),
                             status: .forbidden)
        }
        let scope = principal.role == .tenant ? principal.tenant : nil
        if let scope { context.logFields["tenant"] = scope }
        let now = Timestamp.now()
        let month = Self.monthStart(now)
        let day: Int64 = 86_400_000_000
        let today = Timestamp(microseconds: now.microseconds.floorDivided(by: day) * day)
        let ninetyDays = Timestamp(microseconds: today.microseconds - 89 * day)

        let byTenant = try await costs.costs(CostQuery(from: month, to: now, groupBy: [.tenant], tenant: scope))
        let byModel = try await costs.costs(CostQuery(from: month, to: now, groupBy: [.model], tenant: scope))
        let daily = try await costs.costs(CostQuery(from: ninetyDays, to: now, groupBy: [.day], tenant: scope))
        let beforeToday = today > month ? try await costs.costs(CostQuery(from: month, to: today, groupBy: [], tenant: scope)).total.costUSD : "0"
        let monthDays = Int((Self.monthStart(Timestamp(microseconds: month.microseconds + 32 * day)).microseconds - today.microseconds) / day)
        // The page stands without its forecast card; a failure is logged, not hidden.
        var forecast: PlanningStore.SpendForecast?
        do {
            forecast = try await planning.forecastSpend(tenant: scope, model: nil, horizon: max(monthDays, 1), level: 0.8, asOf: now)
        } catch {
            context.logger.warning("overview: no month forecast", metadata: ["error": .string(String(describing: error))])
        }
        let budgetList = try await budgets.list(tenant: scope)
        let statuses = budgetList.isEmpty ? [] : try await planning.statuses(budgetList, at: now)
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
        body += "<div class=\"muted\">\(total.requests) requests, usage cost (idle share in the chargeback)</div></section>"
        if let forecast {
            let base = Self.decimal(beforeToday)
            func plus(_ d: Decimal) -> String { "\(base + d)" }
            body += "<section class=\"card\" id=\"forecast\"><h2>Month forecast (p50, 80% interval)</h2><div class=\"big\">\(HTML.money(plus(forecast.total.p50)))</div>"
            body += "<div class=\"muted\">\(HTML.money(plus(forecast.total.lower))) to \(HTML.money(plus(forecast.total.upper))) · \(HTML.escape(forecast.method))</div></section>"
        }
        body += "<section class=\"card\" id=\"budgets-at-risk\"><h2>Budgets at risk or exceeded</h2><div class=\"big\">\(atRisk.count) of \(statuses.count)</div></section>"
        body += "</div>"

        // Spend per day, 90 days: a chart and its numbers.
        var byDay: [String: String] = [:]
        for row in daily.rows { if let d = row.group.first ?? nil { byDay[d] = row.costUSD } }
        var points: [(label: String, value: Double, exact: String)] = []
        for i in 0..<90 {
            let d = String(Timestamp(microseconds: ninetyDays.microseconds + Int64(i) * day).rfc3339.prefix(10))
            let exact = byDay[d] ?? "0"
            points.append((d, NSDecimalNumber(decimal: Self.decimal(exact)).doubleValue, exact))
        }
        body += "<h2>Spend per day, last 90 days</h2>" + HTML.bars(points.map { ($0.label, $0.value) }, title: "Usage cost per day, \(points.first!.label) to \(points.last!.label)")
        body += "<details><summary>The numbers</summary><table><thead><tr><th>Day</th><th class=\"n\">Cost</th></tr></thead><tbody>"
        for p in points.reversed() where p.exact != "0" { body += "<tr><td>\(p.label)</td><td class=\"n\">\(HTML.money(p.exact))</td></tr>" }
        body += "</tbody></table></details>"

        func top(_ report: CostReport, _ name: String, _ id: String) -> String {
            let rows = report.rows.sorted { Self.decimal($0.costUSD) > Self.decimal($1.costUSD) }.prefix(10)
            var t = "<section id=\"\(id)\"><h2>Top \(name)s this month</h2><table><thead><tr><th>\(name.capitalized)</th><th class=\"n\">Requests</th><th class=\"n\">Cost</th><th class=\"n\">Per 1M tokens</th></tr></thead><tbody>"
            for r in rows {
                t += "<tr><td>\(HTML.escape((r.group.first ?? nil) ?? "—"))</td><td class=\"n\">\(r.requests)</td><td class=\"n\">\(HTML.money(r.costUSD))</td>"
                t += "<td class=\"n\">\(r.costPer1MTokensUSD.map(HTML.money) ?? "—")</td></tr>"
            }
            if rows.isEmpty { t += "<tr><td colspan=\"4\" class=\"muted\">No usage this month yet.</td></tr>" }
            return t + "</tbody></table></section>"
        }
        if scope == nil { body += top(byTenant, "tenant", "top-tenants") }
        body += top(byModel, "model", "top-models")

        body += "<section id=\"budgets\"><h2>Budgets at risk</h2>"
        if atRisk.isEmpty {
            body += statuses.isEmpty
                ? "<p class=\"muted\">No budgets yet. Finance and admin keys create them with <code>PUT /v1/budgets/{name}</code>.</p>"
                : "<p>None: every budget is within its amount and forecast.</p>"
        } else {
            body += "<table><thead><tr><th>Budget</th><th>State</th><th class=\"n\">Spent</th><th class=\"n\">Amount</th><th class=\"n\">Forecast p50</th><th>Exhausts</th></tr></thead><tbody>"
            for s in atRisk {
                body += "<tr><td>\(HTML.escape(s.budget.name))</td><td class=\"\(s.state.rawValue)\">\(s.state.rawValue.replacingOccurrences(of: "_", with: " "))</td>"
                body += "<td class=\"n\">\(HTML.money("\(s.spent)"))</td><td class=\"n\">\(HTML.money("\(s.budget.amount)"))</td>"
                body += "<td class=\"n\">\(HTML.money("\(s.forecastP50)"))</td><td>\(s.projectedExhaustionDate ?? "—")</td></tr>"
            }
            body += "</tbody></table>"
        }
        body += "</section>"
        return Self.html(HTML.page(title: "Overview", current: "/", session: session, body: body))
    }
}
