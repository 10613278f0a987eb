import Foundation
import GPULedgerCore
import GPULedgerTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The web console: sign-in, sessions and CSRF, tenant isolation, and the Overview's figures
/// against the API's for the same query.
@Suite struct ConsoleTests {
    static let form = "application/x-www-form-urlencoded"

    /// The value of a `Set-Cookie` named `name` in `headers`.
    func setCookie(_ headers: HTTPFields, _ name: String) -> String? {
        headers[values: .setCookie].first { $0.hasPrefix(name + "=") }
    }

    func cookieValue(_ setCookie: String?) -> String {
        String(setCookie?.split(separator: ";").first?.dropFirst("gpl_session=".count) ?? "")
    }

    /// Signs in with `key` through the form; the session cookie's value.
    func signIn(_ client: some TestClientProtocol, key: String) async throws -> String {
        let page = try await client.get("/signin", key: nil)
        #expect(page.status == .ok)
        let nonceCookie = try #require(setCookie(page.headers, "gpl_signin"))
        let nonce = String(nonceCookie.split(separator: ";")[0].dropFirst("gpl_signin=".count))
        #expect(page.body.contains(#"name="csrf" value="\#(nonce)""#))
        let answer = try await client.post("/signin", key: nil, contentType: Self.form, body: "csrf=\(nonce)&key=\(key)",
                                           headers: [.cookie: "gpl_signin=\(nonce)"])
        #expect(answer.status == .seeOther)
        #expect(answer.headers[.location] == "/")
        let session = try #require(setCookie(answer.headers, "gpl_session"))
        #expect(session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("Max-Age=43200"))
        #expect(!session.contains("Secure")) // plain HTTP here; Secure behind a TLS proxy (X-Forwarded-Proto: https)
        return cookieValue(session)
    }

    func page(_ client: some TestClientProtocol, _ uri: String, session: String) async throws -> Answer {
        try await client.get(uri, key: nil, headers: [.cookie: "gpl_session=\(session)"])
    }

    /// The exact amount shown in the element with `id` (its first `<data value="…">`).
    func shown(_ html: String, id: String) -> String? {
        guard let section = html.range(of: "id=\"\(id)\""), let v = html[section.upperBound...].range(of: "<data class=\"usd\" value=\"") else { return nil }
        return String(html[v.upperBound...].prefix { $0 != "\"" })
    }

    @Test func signInShowsTheAPIsFiguresAndATenantSeesOnlyItsOwn() async throws {
        let dir = try pricingFolder(["cloud.csv": "acme-cloud,r1,H100,on_demand,3.60,2024-01-01,list\n"], defaults: "H100,acme-cloud,r1,on_demand\n")
        let t = try await TestApp.make { $0.pricingDirectory = dir }
        let now = Timestamp.now().microseconds
        let month = Timestamp(microseconds: now - 20 * 60_000_000).rfc3339 // 20 and 10 minutes ago: this month, unless it began in them
        let recent = Timestamp(microseconds: now - 10 * 60_000_000).rfc3339
        try await t.application().test(.router) { client in
            // Before signing in: the sign-in page, never the data.
            let anonymous = try await client.get("/", key: nil)
            #expect(anonymous.status == .seeOther && anonymous.headers[.location] == "/signin")

            let session = try await signIn(client, key: t.financeKey)
            // No usage yet: the empty state says how to post some.
            let empty = try await page(client, "/", session: session)
            #expect(empty.status == .ok && empty.body.contains("No usage yet") && empty.body.contains("POST /v1/usage"))

            try await client.ingest([
                record("c1", tenant: "acme", ["started_at": "\"\(month)\"", "gpu_seconds": "3600"]),
                record("c2", tenant: "globex", ["started_at": "\"\(recent)\"", "gpu_seconds": "7200", "model": "\"qwen-72b\""]),
            ], key: t.ingestKey)
            let overview = try await page(client, "/", session: session)
            #expect(overview.status == .ok)
            #expect(overview.headers[.contentType] == "text/html; charset=utf-8")
            let api = try await client.get("/v1/costs?group_by=tenant", key: t.financeKey).json
            let apiTotal = try #require((api["total"] as? [String: Any])?["cost_usd"] as? String)
            #expect(shown(overview.body, id: "mtd") == apiTotal, "\(overview.body)")
            #expect(apiTotal == "10.800000000000") // 3 GPU-hours at $3.60
            #expect(overview.body.contains(">$10.80</data>"))
            #expect(overview.body.contains(">globex<") && overview.body.contains(">acme<"))
            #expect(!overview.body.contains(t.financeKey))

            // A tenant key: its own figures, no other tenant anywhere.
            let tenantSession = try await signIn(client, key: t.acmeTenantKey)
            let mine = try await page(client, "/", session: tenantSession)
            let apiMine = try await client.get("/v1/costs", key: t.acmeTenantKey).json
            #expect(shown(mine.body, id: "mtd") == (apiMine["total"] as? [String: Any])?["cost_usd"] as? String)
            #expect(shown(mine.body, id: "mtd") != apiTotal)
            #expect(!mine.body.contains("globex") && !mine.body.contains("qwen-72b"))

            // An ingest key signs in but reads nothing.
            let ingestSession = try await signIn(client, key: t.ingestKey)
            #expect(try await page(client, "/", session: ingestSession).status == .forbidden)
        }
    }

    @Test func formsWithoutTheCSRFTokenAreRefused() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            // A sign-in posted from elsewhere (no nonce cookie, or a different one) is refused.
            let forged = try await client.post("/signin", key: nil, contentType: Self.form, body: "csrf=abc&key=\(t.adminKey)")
            #expect(forged.status == .forbidden)
            #expect(setCookie(forged.headers, "gpl_session") == nil)
            // A wrong key: 401, the form again, no session.
            let page = try await client.get("/signin", key: nil)
            let nonce = String(try #require(setCookie(page.headers, "gpl_signin")).split(separator: ";")[0].dropFirst("gpl_signin=".count))
            let wrong = try await client.post("/signin", key: nil, contentType: Self.form, body: "csrf=\(nonce)&key=gpl_0000",
                                              headers: [.cookie: "gpl_signin=\(nonce)"])
            #expect(wrong.status == .unauthorized && wrong.body.contains("Unknown or revoked API key"))
            #expect(setCookie(wrong.headers, "gpl_session") == nil)

            let session = try await signIn(client, key: t.adminKey)
            let overview = try await self.page(client, "/", session: session)
            let csrf = try #require(overview.body.range(of: #"name="csrf" value=""#).map { String(overview.body[$0.upperBound...].prefix(64)) })
            // Sign-out without the token, or with another: refused, and the session still works.
            #expect(try await client.post("/signout", key: nil, contentType: Self.form, body: "", headers: [.cookie: "gpl_session=\(session)"]).status == .forbidden)
            #expect(try await client.post("/signout", key: nil, contentType: Self.form, body: "csrf=" + String(repeating: "0", count: 64),
                                          headers: [.cookie: "gpl_session=\(session)"]).status == .forbidden)
            #expect(try await self.page(client, "/", session: session).status == .ok)
            // With it: signed out, the cookie cleared, the session gone on the server.
            let out = try await client.post("/signout", key: nil, contentType: Self.form, body: "csrf=\(csrf)", headers: [.cookie: "gpl_session=\(session)"])
            #expect(out.status == .seeOther && setCookie(out.headers, "gpl_session")?.contains("Max-Age=0") == true)
            #expect(try await self.page(client, "/", session: session).headers[.location] == "/signin")
        }
    }
}
