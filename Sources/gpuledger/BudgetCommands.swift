import ArgumentParser
import Foundation

struct BudgetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "budget",
        abstract: "Budgets from scripts and CI.",
        subcommands: [BudgetCheck.self])
}

struct BudgetCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "One line per budget: spent, forecast for the period end, state, projected exhaustion.",
        discussion: """
            Asks the running service (GET /v1/budgets/NAME/status, or GET /v1/budgets?status=true
            for --all, the default). Exit status: 0 every budget is within the --fail-on state,
            1 a budget is in it (exceeded by default; at_risk also fails on at_risk), 2 on an
            error (service unreachable, key refused, unknown budget, bad option).
            """)

    @Option(help: "Check this budget only.") var budget: String?
    @Flag(help: "Check every budget the key can see (the default).") var all = false
    @Option(help: "Fail (exit 1) on this state or worse: at_risk or exceeded.") var failOn: String = "exceeded"
    @Option(help: "Ask as of this time (RFC 3339 or a date) instead of now.") var at: String?
    @Option(help: "text (one line per budget) or json (the service's answers).") var format: String = "text"
    @OptionGroup var service: ServiceOptions

    func run() async throws {
        do {
            try await check()
        } catch let e as ExitCode {
            throw e
        } catch {
            note("gpuledger budget check: \(error)")
            throw ExitCode(2)
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    func check() async throws {
        guard ["at_risk", "exceeded"].contains(failOn) else { throw Failure("--fail-on must be at_risk or exceeded") }
        guard ["text", "json"].contains(format) else { throw Failure("--format must be text or json") }
        if budget != nil && all { throw Failure("give --budget NAME or --all, not both") }
        let client = try ServiceClient(service)
        var statuses: [[String: Any]] = []
        var query = at.map { "at=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0) }
        if let budget {
            let name = budget.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? budget
            let object = try await get(client, "/v1/budgets/\(name)/status" + (query.map { "?" + $0 } ?? ""))
            statuses = [object]
        } else {
            query = ["status=true", query].compactMap { $0 }.joined(separator: "&")
            let object = try await get(client, "/v1/budgets?" + query!)
            statuses = (object["budgets"] as? [[String: Any]] ?? []).compactMap { $0["status"] as? [String: Any] }
        }
        let failing: Set<String> = failOn == "at_risk" ? ["at_risk", "exceeded"] : ["exceeded"]
        var failed = 0
        if format == "json" {
            let data = try JSONSerialization.data(withJSONObject: ["budgets": statuses], options: [.sortedKeys, .prettyPrinted])
            print(String(decoding: data, as: UTF8.self))
        }
        for s in statuses {
            let state = s["state"] as? String ?? "?"
            if failing.contains(state) { failed += 1 }
            if format == "text" { print(Self.line(s)) }
        }
        if statuses.isEmpty && format == "text" { print("no budgets (create one with PUT /v1/budgets/NAME)") }
        if failed > 0 {
            note("\(failed) of \(statuses.count) budget\(statuses.count == 1 ? "" : "s") \(failOn == "at_risk" ? "at risk or exceeded" : "exceeded")")
            throw ExitCode(1)
        }
    }

    /// `NAME  STATE  spent $S of $A (P%)  forecast $P50 [$P10–$P90]  exhausts DATE  (tenant, period)`.
    static func line(_ s: [String: Any]) -> String {
        func text(_ k: String) -> String { s[k] as? String ?? "" }
        let forecast = s["forecast_usd"] as? [String: Any] ?? [:]
        func f(_ k: String) -> String { forecast[k] as? String ?? "?" }
        let spent = Decimal(string: text("spent_usd")) ?? 0, amount = Decimal(string: text("amount_usd")) ?? 0
        let percent = amount > 0 ? NSDecimalNumber(decimal: spent * 100 / amount).doubleValue : 0
        let exhaustion = (s["projected_exhaustion_date"] as? String).map { "exhausts \($0)" } ?? "not exhausted this period"
        let who = (s["tenant"] as? String) ?? "fleet"
        return "\(text("name"))  \(text("state").uppercased())  spent $\(text("spent_usd")) of $\(text("amount_usd")) (\(String(format: "%.1f", percent))%)"
            + "  forecast $\(f("p50")) [p10 $\(f("p10")), p90 $\(f("p90"))]  \(exhaustion)"
            + "  (\(who), \(text("period")) \(text("period_start").prefix(10)) to \(text("period_end").prefix(10)))"
    }

    func get(_ client: ServiceClient, _ path: String) async throws -> [String: Any] {
        let reply: ServiceClient.Reply
        do { reply = try await client.send("GET", path) } catch let e as ServiceClient.Unreachable { throw Failure(e.description) }
        guard reply.status == 200 else { throw Failure("HTTP \(reply.status) from \(path): \(reply.errorMessage)") }
        return (try? JSONSerialization.jsonObject(with: reply.data)) as? [String: Any] ?? [:]
    }
}
