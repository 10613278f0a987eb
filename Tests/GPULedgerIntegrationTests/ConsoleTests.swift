import Foundation
import GPULedgerCore
import GPULedgerStore
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
        // 20 and 10 minutes before the test clock's instant, or its month's first instant if later.
        let now = TestClock.now.microseconds, monthStart = TestClock.month.start.microseconds
        let month = Timestamp(microseconds: max(now - 20 * 60_000_000, monthStart)).rfc3339
        let recent = Timestamp(microseconds: max(now - 10 * 60_000_000, monthStart)).rfc3339
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

/// Every console page against the API's answer to the same query, on generated records.
@Suite struct ConsolePageTests {
    let c = ConsoleTests()

    /// The cells (inner HTML) of the row of table `id` whose first cell's text is `key`.
    func row(_ html: String, table id: String, _ key: String) -> [String]? {
        guard let start = html.range(of: "id=\"\(id)\""), let end = html[start.upperBound...].range(of: "</table>") else { return nil }
        for tr in html[start.upperBound..<end.lowerBound].components(separatedBy: "<tr>").dropFirst() {
            let cells = tr.components(separatedBy: "<td").dropFirst().map { cell -> String in
                let inner = cell.drop { $0 != ">" }.dropFirst()
                return String(inner.prefix { _ in true }).components(separatedBy: "</td>")[0]
            }
            if let first = cells.first, text(first) == key { return cells }
        }
        return nil
    }

    /// A cell's text without tags.
    func text(_ cell: String) -> String {
        var out = "", inTag = false
        for ch in cell { if ch == "<" { inTag = true } else if ch == ">" { inTag = false } else if !inTag { out.append(ch) } }
        return out.replacingOccurrences(of: "&amp;", with: "&")
    }

    /// The exact amount of a cell's `<data value>`.
    func exact(_ cell: String?) -> Decimal? {
        guard let cell, let r = cell.range(of: "value=\"") else { return nil }
        return Decimal(string: String(cell[r.upperBound...].prefix { $0 != "\"" }))
    }

    func decimal(_ any: Any?) -> Decimal? { (any as? String).flatMap { Decimal(string: $0) } }

    @Test func everyPageShowsTheAPIsFiguresForTheSameQuery() async throws {
        let dir = try pricingFolder(["cloud.csv": """
            acme-cloud,r1,H100,on_demand,3.60,2024-01-01,list
            acme-cloud,r1,H200,on_demand,4.20,2024-01-01,list
            acme-cloud,r1,A100-80GB,on_demand,1.80,2024-01-01,list
            acme-cloud,r1,L40S,on_demand,0.90,2024-01-01,list

            """], defaults: "H100,acme-cloud,r1,on_demand\nH200,acme-cloud,r1,on_demand\nA100-80GB,acme-cloud,r1,on_demand\nL40S,acme-cloud,r1,on_demand\n")
        let t = try await TestApp.make { $0.pricingDirectory = dir }
        let now = TestClock.now
        let thisMonth = TestClock.month
        let last = Period.containing(Timestamp(microseconds: thisMonth.start.microseconds - 1))
        let span = (now.microseconds - last.start.microseconds) / 1_000_000 - 3600
        let tenants = ["acme", "globex", "initech"]
        // (And one of acme's at the end of last month: the page offers the label keys of its latest records.)
        let records = (0..<1500).map { SampleRecords.json($0, tenant: tenants[$0 % 3], start: last.start, spanSeconds: span) }
            + [SampleRecords.json(77_777, tenant: "acme", at: last.end.adding(seconds: -600))]
        try await t.application().test(.router) { client in
            try await client.ingest(records, key: t.ingestKey)
            #expect(try await client.put("/v1/pools/h100-pool", key: t.adminKey,
                                         body: #"{"accelerator":"H100","provider":"acme-cloud","region":"r1","tier":"on_demand"}"#).status == .created)
            #expect(try await client.post("/v1/pools/h100-pool/capacity", key: t.adminKey,
                                          body: "{\"at\":\"\(last.start.rfc3339)\",\"gpus\":2}").status == .created)
            #expect(try await client.put("/v1/budgets/acme-m", key: t.financeKey, body: #"{"tenant":"acme","period":"monthly","amount_usd":"50"}"#).status == .created)
            #expect(try await client.put("/v1/budgets/fleet-q", key: t.financeKey, body: #"{"tenant":null,"period":"quarterly","amount_usd":"100000"}"#).status == .created)
            let session = try await c.signIn(client, key: t.financeKey)
            func page(_ uri: String, _ s: String? = nil) async throws -> Answer { try await c.page(client, uri, session: s ?? session) }

            // Tenants: last month's chargeback, row by row, and its downloads byte for byte.
            let tenantsPage = try await page("/tenants?period=\(last)")
            #expect(tenantsPage.status == .ok)
            let bill = try await client.get("/v1/chargeback?period=\(last)", key: t.financeKey).json
            let billRows = try #require(bill["rows"] as? [[String: Any]])
            #expect(billRows.count == 3)
            for r in billRows {
                let cells = try #require(row(tenantsPage.body, table: "chargeback", r["tenant"] as! String))
                #expect(text(cells[1]).replacingOccurrences(of: ",", with: "") == "\(r["requests"]!)")
                #expect(exact(cells[3]) == decimal(r["usage_cost_usd"]))
                #expect(exact(cells[4]) == decimal(r["idle_cost_usd"]))
                #expect(exact(cells[5]) == decimal(r["total_cost_usd"]))
            }
            let fleet = try #require(bill["fleet"] as? [String: Any])
            #expect(tenantsPage.body.contains(shownMoney(fleet["total_cost_usd"] as! String)))
            // Sorted by total, descending, by default.
            let order = billRows.sorted { decimal($0["total_cost_usd"])! > decimal($1["total_cost_usd"])! }.map { $0["tenant"] as! String }
            let shownOrder = order.map { tenantsPage.body.range(of: ">\($0)</a></td>")!.lowerBound }
            #expect(shownOrder == shownOrder.sorted())
            for format in ["csv", "focus"] {
                let download = try await page("/tenants/\(format == "csv" ? "chargeback" : "focus").csv?period=\(last)")
                let api = try await client.get("/v1/chargeback?period=\(last)&format=\(format)", key: t.financeKey)
                #expect(download.status == .ok && download.body == api.body && download.headers[.contentType] == api.headers[.contentType])
            }

            // A tenant's page: its total, its models, a label's breakdown.
            let acmePage = try await page("/tenants/acme?period=\(last)&label=team")
            // A label key that is no key is refused, saying what a key is.
            let badLabel = try await page("/tenants/acme?period=\(last)&label=\(String(repeating: "k", count: 65))")
            #expect(badLabel.status == .badRequest && badLabel.body.contains("names no label key"), "\(badLabel.body.prefix(300))")
            let acmeRow = try #require(billRows.first { $0["tenant"] as? String == "acme" })
            #expect(c.shown(acmePage.body, id: "tenant-total").flatMap { Decimal(string: $0) } == decimal(acmeRow["total_cost_usd"]))
            let range = "from=\(last.start.rfc3339)&to=\(last.end.rfc3339)"
            let acmeModels = try #require(try await client.get("/v1/costs?tenant=acme&group_by=model&\(range)", key: t.financeKey).json["rows"] as? [[String: Any]])
            #expect(acmeModels.count >= 5)
            for m in acmeModels {
                let cells = try #require(row(acmePage.body, table: "tenant-models", m["model"] as! String))
                #expect(exact(cells[3]) == decimal(m["cost_usd"]))
            }
            #expect(acmePage.body.contains(">env</a>") && acmePage.body.contains(">team</a>"))
            let teams = try #require(try await client.get("/v1/costs?tenant=acme&group_by=label:team&\(range)", key: t.financeKey).json["rows"] as? [[String: Any]])
            for r in teams {
                let cells = try #require(row(acmePage.body, table: "tenant-labels", r["label:team"] as! String))
                #expect(exact(cells[2]) == decimal(r["cost_usd"]))
            }

            // Models: the page's range, against /v1/stats and /v1/costs.
            let models = try await page("/models?range=24h&metric=ttft")
            #expect(models.status == .ok)
            func attribute(_ name: String) -> String {
                String(models.body[models.body.range(of: "\(name)=\"")!.upperBound...].prefix { $0 != "\"" })
            }
            let window = "from=\(attribute("data-from"))&to=\(attribute("data-to"))"
            let stats = try #require(try await client.get("/v1/stats?group_by=model&\(window)", key: t.financeKey).json["rows"] as? [[String: Any]])
            let modelCosts = try #require(try await client.get("/v1/costs?group_by=model&\(window)", key: t.financeKey).json["rows"] as? [[String: Any]])
            #expect(stats.count >= 5) // of the 10 models, those with records in the last 24 hours
            for s in stats {
                let name = s["model"] as! String
                let cells = try #require(row(models.body, table: "models", name))
                #expect(text(cells[1]).replacingOccurrences(of: ",", with: "") == "\(s["requests"]!)")
                #expect(exact(cells[3]) == decimal(modelCosts.first { $0["model"] as? String == name }?["cost_usd"]))
                let e2e = s["e2e_ms"] as! [String: Double], ttft = s["ttft_ms"] as! [String: Double]
                #expect(text(cells[11]) == String(format: "%.1f", e2e["p50"]!) && text(cells[13]) == String(format: "%.1f", e2e["p99"]!))
                #expect(text(cells[6]) == String(format: "%.1f", ttft["p95"]!))
            }
            #expect(models.body.contains("p95 time to first token per hour, last 24 hours") && models.body.contains("<polyline"))

            // The latency chart's hours against /v1/stats by model and hour, also after a late
            // record changes an hour already shown (the page keeps hours until their records change).
            func chartMatchesTheAPI() async throws -> Int {
                let page = try await page("/models")
                let hours = try #require(try await client.get("/v1/stats?group_by=model,hour&from=\(Timestamp(microseconds: now.microseconds - 30 * 3_600_000_000).rfc3339)",
                                                              key: t.financeKey).json["rows"] as? [[String: Any]])
                let table = try #require(page.body.range(of: "id=\"latency-series\"").map { String(page.body[$0.upperBound...]) })
                let header = table.components(separatedBy: "</thead>")[0].components(separatedBy: "<th ").dropFirst().map { text(String($0.drop { $0 != ">" }.dropFirst())) }
                var compared = 0
                for r in hours {
                    guard let model = r["model"] as? String, let hour = r["hour"] as? String, let column = header.firstIndex(of: model),
                          let cells = row(page.body, table: "latency-series", String(hour.prefix(13)) + ":00Z") else { continue }
                    #expect(text(cells[column]) == String(format: "%.1f", (r["e2e_ms"] as! [String: Double])["p95"]!), "\(model) \(hour)")
                    compared += 1
                }
                return compared
            }
            #expect(try await chartMatchesTheAPI() >= 10)
            let busy = Timestamp(microseconds: (now.microseconds / 3_600_000_000 - 5) * 3_600_000_000)
            try await client.ingest((0..<40).map { record("late-\($0)", tenant: "acme", ["started_at": "\"\(busy.adding(seconds: Int64($0)).rfc3339)\"",
                                                                                      "e2e_ms": "90000000"]) }, key: t.ingestKey)
            let late = try await page("/models")
            let lateRow = try #require(row(late.body, table: "latency-series", String(busy.rfc3339.prefix(13)) + ":00Z"))
            #expect(lateRow.contains("90000000.0"), "the late records' hour was not recomputed: \(lateRow)")
            #expect(try await chartMatchesTheAPI() >= 10)

            // Budgets: each one's spent and state as its status says; the burn-up ends at the forecast.
            let budgetsPage = try await page("/budgets")
            for name in ["acme-m", "fleet-q"] {
                let status = try await client.get("/v1/budgets/\(name)/status", key: t.financeKey).json
                let cells = try #require(row(budgetsPage.body, table: "budget-list", name))
                #expect(exact(cells[4]) == decimal(status["spent_usd"]))
                #expect(text(cells[8]) == (status["state"] as! String).replacingOccurrences(of: "_", with: " "))
                let detail = try await page("/budgets/\(name)")
                #expect(c.shown(detail.body, id: "budget-spent").flatMap { Decimal(string: $0) } == decimal(status["spent_usd"]))
                let forecast = try #require(c.shown(detail.body, id: "budget-forecast"))
                let burnUp = try #require(detail.body.range(of: "id=\"burn-up\"").map { String(detail.body[$0.upperBound...]) })
                // The table lists the days newest first: its first forecast cell is the period's end.
                let lastForecast = burnUp.components(separatedBy: "<tr>")[2].components(separatedBy: "<td").dropFirst().map { $0 }[2]
                #expect(exact(lastForecast) == Decimal(string: forecast))
            }

            // Capacity: the planner's answer for the same question.
            let capacity = try await page("/capacity?pool=h100-pool&horizon_days=14&target_utilization=0.6&budget_usd=5000")
            let plan = try await client.get("/v1/forecast/capacity?pool=h100-pool&horizon_days=14&target_utilization=0.6&budget_usd=5000", key: t.financeKey).json
            #expect(capacity.body.contains("<div class=\"big\">\(plan["required_gpus"]!)</div>"))
            #expect(c.shown(capacity.body, id: "plan-cost").flatMap { Decimal(string: $0) } == decimal(plan["plan_cost_usd"]))
            #expect(try #require(row(capacity.body, table: "pools", "h100-pool")).count == 5)
            // The plan per day and the same demand on each GPU type, as the API answers them.
            for day in try #require(plan["days"] as? [[String: Any]]) {
                let cells = try #require(row(capacity.body, table: "plan-day-rows", day["date"] as! String))
                #expect(text(cells[2]) == "\(day["required_gpus"]!)")
            }
            let types = try #require(try await client.get("/v1/forecast/capacity?pool=h100-pool&horizon_days=14&target_utilization=0.6&accelerators=all",
                                                          key: t.financeKey).json["accelerators"] as? [[String: Any]])
            #expect(types.count == 4)
            for option in types {
                if option["measured"] as? Bool == true {
                    let cells = try #require(row(capacity.body, table: "plan-type-rows", option["accelerator"] as! String))
                    #expect(text(cells[1]) == "\(option["required_gpus"]!)")
                } else {
                    #expect(row(capacity.body, table: "plan-type-rows", option["accelerator"] as! String) == nil)
                }
            }

            // Bad input is a page that says what is wrong, never a 500.
            let bad = try await page("/tenants?period=2026-13")
            #expect(bad.status == .badRequest && bad.body.contains("period=2026-13 is not a month"))
            #expect(try await page("/models?range=30d").status == .badRequest)
            #expect(try await page("/capacity?pool=nope").status == .notFound)
            #expect(try await page("/budgets/nope").status == .notFound)

            // A tenant key: its own tenant, its own budgets, no capacity page, no other tenant.
            let mine = try await c.signIn(client, key: t.acmeTenantKey)
            let other = try await page("/tenants/globex", mine)
            #expect(other.status == .forbidden && other.body.contains("reads only tenant acme"))
            #expect(try await page("/capacity", mine).status == .forbidden)
            let myTenants = try await page("/tenants?period=\(last)", mine)
            #expect(myTenants.body.contains(">acme</a>") && !myTenants.body.contains("globex") && !myTenants.body.contains("id=\"fleet\""))
            let myBudgets = try await page("/budgets", mine)
            #expect(myBudgets.body.contains("acme-m") && !myBudgets.body.contains("fleet-q") && !myBudgets.body.contains("New budget"))
            #expect(try await page("/budgets/fleet-q", mine).status == .forbidden)
        }
    }

    @Test func budgetFormsNeedTheirTokenAndKeepTheAPIsRules() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let session = try await c.signIn(client, key: t.financeKey)
            let form = try await c.page(client, "/budgets/new", session: session)
            let csrf = try #require(form.body.range(of: #"name="csrf" value=""#).map { String(form.body[$0.upperBound...].prefix(64)) })
            func post(_ path: String, _ body: String, _ s: String? = nil) async throws -> Answer {
                try await client.post(path, key: nil, contentType: ConsoleTests.form, body: body, headers: [.cookie: "gpl_session=\(s ?? session)"])
            }
            let fields = "name=q4-infra&tenant=&period=quarterly&amount_usd=25000.50&thresholds=0.5%2C+0.9&basis=total&mode=create"
            // Without the token, or with another: 403, nothing stored.
            #expect(try await post("/budgets", fields).status == .forbidden)
            #expect(try await post("/budgets", fields + "&csrf=" + String(repeating: "a", count: 64)).status == .forbidden)
            #expect(try await client.get("/v1/budgets/q4-infra", key: t.financeKey).status == .notFound)
            // With it: created as PUT /v1/budgets would.
            let created = try await post("/budgets", fields + "&csrf=\(csrf)")
            #expect(created.status == .seeOther && created.headers[.location] == "/budgets/q4-infra")
            let stored = try await client.get("/v1/budgets/q4-infra", key: t.financeKey).json
            #expect(stored["amount_usd"] as? String == "25000.50" && stored["basis"] as? String == "total" && stored["tenant"] is NSNull)
            #expect((stored["thresholds"] as? [Double]) == [0.5, 0.9])
            // The same name again is a conflict, not a silent overwrite.
            let again = try await post("/budgets", fields.replacingOccurrences(of: "25000.50", with: "1") + "&csrf=\(csrf)")
            #expect(again.status == .conflict && again.body.contains("exists already"))
            // Invalid fields: 422, the form again with each field's message, nothing changed.
            let invalid = try await post("/budgets", "name=q4-infra&tenant=Bad+Tenant&period=weekly&amount_usd=-5&thresholds=x&basis=usage&mode=edit&csrf=\(csrf)")
            #expect(invalid.status == .unprocessableContent)
            for field in ["tenant", "period", "amount_usd", "thresholds"] { #expect(invalid.body.contains("id=\"\(field)-error\""), "\(field)") }
            #expect(invalid.body.contains("value=\"Bad Tenant\""))
            #expect(try await client.get("/v1/budgets/q4-infra", key: t.financeKey).json["amount_usd"] as? String == "25000.50")
            // Edit, then delete.
            let edited = try await post("/budgets", "name=q4-infra&tenant=acme&period=monthly&amount_usd=300&thresholds=1&basis=usage&mode=edit&csrf=\(csrf)")
            #expect(edited.status == .seeOther)
            #expect(try await client.get("/v1/budgets/q4-infra", key: t.financeKey).json["tenant"] as? String == "acme")
            let editPage = try await c.page(client, "/budgets/q4-infra/edit", session: session)
            #expect(editPage.body.contains("value=\"300.00\"") && editPage.body.contains("action=\"/budgets/q4-infra/delete\""))
            #expect(try await post("/budgets/q4-infra/delete", "").status == .forbidden)
            #expect(try await post("/budgets/q4-infra/delete", "csrf=\(csrf)").status == .seeOther)
            #expect(try await client.get("/v1/budgets/q4-infra", key: t.financeKey).status == .notFound)
            // A tenant key cannot manage budgets, even with its own session's token.
            let tenantSession = try await c.signIn(client, key: t.acmeTenantKey)
            let tenantPage = try await c.page(client, "/budgets", session: tenantSession)
            let tenantCSRF = try #require(tenantPage.body.range(of: #"name="csrf" value=""#).map { String(tenantPage.body[$0.upperBound...].prefix(64)) })
            #expect(try await post("/budgets", fields + "&csrf=\(tenantCSRF)", tenantSession).status == .forbidden)
            #expect(try await c.page(client, "/budgets/new", session: tenantSession).status == .forbidden)
            #expect(try await client.get("/v1/budgets/q4-infra", key: t.financeKey).status == .notFound)
        }
    }
}

/// The console's rendering of an amount, `$1,234.57`, as it appears in a page.
func shownMoney(_ exact: String) -> String {
    let d = Decimal(string: exact)!
    let f = NumberFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.numberStyle = .decimal
    f.minimumFractionDigits = 2
    f.maximumFractionDigits = 2
    f.usesGroupingSeparator = true
    f.groupingSeparator = ","
    f.groupingSize = 3
    return ">$" + f.string(from: d as NSDecimalNumber)! + "<"
}

@Suite struct ConsolePagingTests {
    @Test func longTablesComeAHundredRowsAPageAndEveryRowOnExactlyOne() async throws {
        let t = try await TestApp.make()
        try await t.database.withDatabase { db in
            let store = BudgetStore(database: db)
            for i in 0..<230 {
                _ = try await store.put(Budget(name: "b\(i)", tenant: "acme", period: .monthly, amount: 100, thresholds: Budget.defaultThresholds, basis: .usage))
            }
        }
        try await t.application().test(.router) { client in
            let session = try await ConsoleTests().signIn(client, key: t.financeKey)
            var seen: [String] = []
            for page in 1...3 {
                let answer = try await ConsoleTests().page(client, "/budgets?page=\(page)", session: session)
                #expect(answer.status == .ok)
                #expect(answer.body.contains("Rows \((page - 1) * 100 + 1) to \(min(page * 100, 230)) of 230"))
                #expect(answer.body.contains("rel=\"next\"") == (page < 3) && answer.body.contains("rel=\"prev\"") == (page > 1))
                let names = answer.body.components(separatedBy: "<td><a href=\"/budgets/").dropFirst().map { String($0.prefix { $0 != "\"" }) }
                #expect(names.count == (page < 3 ? 100 : 30))
                seen += names
            }
            #expect(Set(seen).count == 230 && seen.count == 230)
            #expect(try await ConsoleTests().page(client, "/budgets?page=0", session: session).status == .badRequest)
        }
    }
}
