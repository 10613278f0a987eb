import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import HTTPTypes
import Hummingbird

/// The web console: sign-in with an API key (turned into a session cookie), sign-out, and the
/// pages, rendered on the server from the same stores the API answers from.
public struct ConsoleController: Sendable {
    let keys: KeyStore
    let sessions: SessionStore
    let costs: CostStore
    let periods: PeriodStore
    let budgets: BudgetStore
    let planning: PlanningStore
    let pools: PoolStore
    let stats: StatsStore
    let caches: ReportCaches
    let configuration: AppConfiguration

    public init(keys: KeyStore, sessions: SessionStore, costs: CostStore, periods: PeriodStore, budgets: BudgetStore, planning: PlanningStore,
                pools: PoolStore, stats: StatsStore, caches: ReportCaches, configuration: AppConfiguration) {
        self.keys = keys; self.sessions = sessions; self.costs = costs; self.periods = periods; self.budgets = budgets
        self.planning = planning; self.pools = pools; self.stats = stats; self.caches = caches; self.configuration = configuration
    }

    static let sessionCookie = "gpl_session"
    static let signinCookie = "gpl_signin"
    static let lifetime: Duration = .seconds(12 * 3600)

    public func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/", use: overview)
        router.get("tenants", use: tenants)
        router.get("tenants/chargeback.csv") { try await chargebackDownload($0, context: $1, format: "csv") }
        router.get("tenants/focus.csv") { try await chargebackDownload($0, context: $1, format: "focus") }
        router.get("tenants/:tenant", use: tenant)
        router.get("models", use: models)
        router.get("budgets", use: budgetList)
        router.get("budgets/new", use: budgetForm)
        router.post("budgets", use: budgetSave)
        router.get("budgets/:name", use: budgetPage)
        router.get("budgets/:name/edit", use: budgetForm)
        router.post("budgets/:name/delete", use: budgetDelete)
        router.get("capacity", use: capacity)
        router.get("signin", use: signinForm)
        router.get("favicon.svg") { _, _ in
            Response(status: .ok, headers: [.contentType: "image/svg+xml", .cacheControl: "public, max-age=86400"],
                     body: .init(byteBuffer: ByteBuffer(string: HTML.favicon)))
        }
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

    func session(_ request: Request, _ context: AppRequestContext) async throws -> (token: String, session: SessionStore.Session)? {
        guard let token = FormData.cookies(request.headers[.cookie])[Self.sessionCookie],
              let session = try await sessions.find(token, now: context.now) else { return nil }
        return (token, session)
    }

    static func form(_ request: Request) async throws -> [String: String] {
        let media = request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard media == "application/x-www-form-urlencoded" else { return [:] }
        let body = try await request.body.collect(upTo: 64 * 1024)
        return FormData.parse(String(buffer: body))
    }

    @Sendable func signinForm(_ request: Request, context: AppRequestContext) async throws -> Response {
        if try await session(request, context) != nil { return Self.redirect("/") }
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
        let (token, _) = try await sessions.create(principal: principal, lifetime: Self.lifetime, now: context.now)
        context.logFields["key_id"] = "\(principal.keyID)"
        return Self.redirect("/", cookies: [Self.cookie(Self.sessionCookie, token, maxAge: Int(Self.lifetime.components.seconds), request: request),
                                            Self.cookie(Self.signinCookie, "", path: "/signin", maxAge: 0, request: request)])
    }

    @Sendable func signout(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let (token, session) = try await session(request, context) else { return Self.redirect("/signin") }
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

    // MARK: - Pages

    /// Who a page is rendered for: the session, and the tenant every figure is limited to (a
    /// tenant key's own; nil: all).
    struct Reader {
        var session: SessionStore.Session
        var scope: String?
        /// The request's instant (`context.now`).
        var now: Timestamp
        var principal: Principal { session.principal }
        var manages: Bool { Access.seesTheFleet(principal) }
    }

    /// Renders a page for a signed-in reader: the sign-in page without a session; a 403 page
    /// for an ingest key (and for a tenant key on a page for admin and finance only); an
    /// `AppError` (a bad query parameter, another tenant's page) as a page with its status.
    func page(_ request: Request, _ context: AppRequestContext, title: String, path: String, managersOnly: Bool = false,
              _ render: (Reader) async throws -> Response) async throws -> Response {
        var signedIn: SessionStore.Session?
        func refuse(_ status: HTTPResponse.Status, _ message: String) -> Response {
            let heading = status == .forbidden ? "Not for this key" : status == .notFound ? "Not found"
                : status.code >= 500 ? "Not available" : "Cannot show this page"
            return Self.html(HTML.page(title: title, current: path, session: signedIn, body: """
                <h1>\(heading)</h1><p role="alert" class="refused" id="refusal">\(HTML.escape(message))</p><p><a href="/">Back to the overview</a></p>
                """), status: status)
        }
        do {
            guard let (_, session) = try await session(request, context) else { return Self.redirect("/signin") }
            signedIn = session
            let principal = session.principal
            context.logFields["key_id"] = "\(principal.keyID)"
            if principal.role == .ingest {
                return refuse(.forbidden, "An ingest key writes usage; it cannot read reports. Sign in with a finance, tenant or admin key.")
            }
            if managersOnly && principal.role == .tenant {
                return refuse(.forbidden, "\(title) covers every tenant's shared pools: only admin and finance keys see it.")
            }
            let scope = principal.role == .tenant ? principal.tenant : nil
            if let scope { context.logFields["tenant"] = scope }
            return try await render(Reader(session: session, scope: scope, now: context.now))
        } catch {
            // Mapped as the API maps it (a database outage is a 503 with Retry-After), as a page.
            let mapped = AppError.from(error)
            if mapped.status.code >= 500 {
                context.logger.error("console page failed", metadata: ["error": .string(String(describing: error))])
            }
            var response = refuse(mapped.status, mapped.message)
            for field in mapped.headers where field.name == .retryAfter { response.headers.append(field) }
            return response
        }
    }

    /// A page's body in the layout.
    static func ok(_ title: String, _ path: String, _ reader: Reader, _ body: String, status: HTTPResponse.Status = .ok) -> Response {
        html(HTML.page(title: title, current: path, session: reader.session, body: body), status: status)
    }

    /// The budget statuses for `list`: those the gauge service computed within the last five
    /// minutes from the same definitions, the rest computed now; and when the oldest was computed.
    func statuses(_ list: [Budget], now: Timestamp) async throws -> (statuses: [BudgetStatus], at: Timestamp) {
        let cached = caches.budgetStatuses.lookup(list, now: now, maxAge: 300_000_000)
        let fresh = cached.missing.isEmpty ? [] : try await planning.statuses(cached.missing, at: now)
        var byName: [String: BudgetStatus] = [:]
        for s in cached.found + fresh { byName[s.budget.name] = s }
        return (list.compactMap { byName[$0.name] }, cached.at ?? now)
    }

    /// `HH:MM UTC` of a time.
    static func clock(_ t: Timestamp) -> String { String(t.rfc3339.dropFirst(11).prefix(5)) + " UTC" }

    /// A month picker (a plain form: no script) with links to the months before and after.
    static func monthPicker(_ period: Period, action: String, extra: [(String, String)] = []) -> String {
        let previous = period.month == 1 ? Period(year: period.year - 1, month: 12) : Period(year: period.year, month: period.month - 1)
        let hidden = extra.map { "<input type=\"hidden\" name=\"\(HTML.escape($0.0))\" value=\"\(HTML.escape($0.1))\">" }.joined()
        let query = extra.map { "&amp;\(HTML.escape($0.0))=\(HTML.escape($0.1))" }.joined()
        return """
            <form class="inline" method="get" action="\(action)">\(hidden)<label for="period">Month<input id="period" name="period" type="month" value="\(period)"></label>
            <button type="submit">Show</button><a href="\(action)?period=\(previous)\(query)">← \(previous)</a><a href="\(action)?period=\(period.next)\(query)">\(period.next) →</a></form>
            """
    }
}
