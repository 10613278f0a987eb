import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import HTTPTypes
import Hummingbird
import GPULedgerTelemetry

/// The Capacity page (admin and finance keys: pools are shared by every tenant): each pool's
/// busy GPUs per hour against its provisioned GPUs over the last seven days, and the capacity
/// planner's answer (`GET /v1/forecast/capacity`) for a chosen pool, horizon, target utilization,
/// coverage and budget: the plan per day, and the forecast demand priced on each GPU type.
extension ConsoleController {
    static let capacityDays: Int64 = 7

    @Sendable func capacity(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await page(request, context, title: "Capacity", path: "/capacity", managersOnly: true) { reader in
            let params = try Query(request, allowed: ["pool", "horizon_days", "target_utilization", "coverage", "budget_usd"])
            let (horizon, target, coverage, budget) = try params.capacityOptions(blankBudgetIsNone: true)
            let hour = Timestamp.hour
            let now = reader.now
            let to = now.hourStart.adding(hours: 1)
            let from = Timestamp(microseconds: to.microseconds - Self.capacityDays * 24 * hour)
            // The planner's pool is the one asked for, else the first by name (the table's first
            // row): its plan is worked out while the pools' hours are read.
            @Sendable func plan(_ pool: String?) async throws -> PlanningStore.CapacityAnswer? {
                guard let pool else { return nil }
                return try await planning.capacity(.init(pool: pool, accelerator: nil, model: nil, horizonDays: horizon, targetUtilization: target,
                                                         coverage: coverage, budgetUSD: budget, asOf: now, compare: []))
            }
            async let poolHours = stats.poolHours(from: from, to: to)
            let asked = params.get("pool")
            let planned = asked != nil ? asked : try await pools.list().first
            async let planAnswer = plan(planned)
            let hours = try await poolHours
            var byPool: [(pool: String, hours: [StatsStore.PoolHour])] = []
            for h in hours {
                if byPool.last?.pool == h.pool { byPool[byPool.count - 1].hours.append(h) } else { byPool.append((h.pool, [h])) }
            }
            var body = "<h1>Capacity</h1>"
            guard !byPool.isEmpty else {
                body += """
                    <div class="empty"><h2>No pools yet</h2><p>A pool is a set of GPUs the organization pays for whether busy or not. Register one and its
                    GPU count, and this page shows how busy it is and how many GPUs the forecast needs:</p>
                    <pre>curl -X PUT http://HOST:8080/v1/pools/h100-east -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
                      -d '{"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand"}'
                    curl -X POST http://HOST:8080/v1/pools/h100-east/capacity -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
                      -d '{"at":"2026-11-01T00:00:00Z","gpus":16}'</pre>
                    <p>Usage records name their pool in the <code>pool</code> field.</p></div>
                    """
                return Self.ok("Capacity", "/capacity", reader, body)
            }
            let poolName = params.get("pool") ?? byPool[0].pool
            guard let selected = byPool.first(where: { $0.pool == poolName }) else {
                throw AppError.notFound("There is no pool \(poolName); the pools are \(byPool.map(\.pool).joined(separator: ", ")).")
            }
            body += "<p class=\"muted\">Busy GPUs: GPU-seconds used in an hour / 3,600. Provisioned: the pool's GPUs over the hour. Last \(Self.capacityDays) days to \(to.rfc3339).</p>"
            var rows: [[String]] = []
            for (pool, hs) in byPool {
                let busy = hs.reduce(0) { $0 + $1.busyGPUs }, provisioned = hs.reduce(0) { $0 + $1.provisionedGPUs }
                let link = "<a href=\"/capacity?pool=\(HTML.escape(pool))\"\(pool == selected.pool ? " aria-current=\"true\"" : "")>\(HTML.escape(pool))</a>"
                rows.append([link, HTML.number(hs.last?.provisionedGPUs ?? 0, 1), HTML.number(hs.map(\.busyGPUs).max() ?? 0, 2),
                             HTML.number(busy / Double(max(hs.count, 1)), 2), provisioned > 0 ? HTML.number(busy / provisioned * 100, 1) + "%" : "—"])
            }
            body += HTML.table(id: "pools", headers: [("Pool", false), ("Provisioned now", true), ("Peak busy GPUs", true), ("Mean busy GPUs", true), ("Utilization", true)], rows: rows)
            if let url = configuration.prometheusURL {
                body += try await hardwareSection(PoolHardware(stats: stats, prometheusURL: url), byPool: byPool, to: to, now: now)
            }

            let labels = selected.hours.map { String($0.hour.rfc3339.prefix(13)) + ":00Z" }
            body += "<section id=\"pool-chart\"><h2>Pool \(HTML.escape(selected.pool)): busy against provisioned GPUs per hour</h2>"
            body += HTML.lines([HTML.Series(name: "Busy GPUs", values: selected.hours.map(\.busyGPUs)),
                                HTML.Series(name: "Provisioned GPUs", values: selected.hours.map(\.provisionedGPUs), dashed: true, color: "#5b6475")],
                               labels: labels, title: "Busy and provisioned GPUs per hour in pool \(selected.pool), last \(Self.capacityDays) days",
                               unit: { String(format: "%.1f GPUs", $0) })
            body += "<details><summary>The numbers</summary>"
            body += HTML.table(id: "pool-hours", headers: [("Hour", false), ("Busy GPUs", true), ("Provisioned GPUs", true), ("Utilization", true)],
                               rows: selected.hours.reversed().map { h in
                                   [String(h.hour.rfc3339.prefix(13)) + ":00Z", HTML.number(h.busyGPUs, 3), HTML.number(h.provisionedGPUs, 2),
                                    h.provisionedGPUs > 0 ? HTML.number(h.busyGPUs / h.provisionedGPUs * 100, 1) + "%" : "—"]
                               })
            body += "</details></section>"

            // The planner.
            body += "<section id=\"planner\"><h2>How many GPUs does \(HTML.escape(selected.pool)) need?</h2>"
            body += "<form class=\"inline\" method=\"get\" action=\"/capacity\"><label for=\"pool\">Pool<select id=\"pool\" name=\"pool\">"
            for (pool, _) in byPool { body += "<option\(pool == selected.pool ? " selected" : "")>\(HTML.escape(pool))</option>" }
            body += "</select></label><label for=\"horizon_days\">Horizon (days)<input id=\"horizon_days\" name=\"horizon_days\" type=\"number\" min=\"1\" max=\"366\" value=\"\(horizon)\"></label>"
            body += "<label for=\"target_utilization\">Target utilization<input id=\"target_utilization\" name=\"target_utilization\" type=\"number\" step=\"0.01\" min=\"0.01\" max=\"1\" value=\"\(target)\"></label>"
            body += "<label for=\"coverage\">Coverage<input id=\"coverage\" name=\"coverage\" type=\"number\" step=\"0.01\" min=\"0.5\" max=\"0.99\" value=\"\(coverage)\"></label>"
            body += "<label for=\"budget_usd\">Budget (USD, optional)<input id=\"budget_usd\" name=\"budget_usd\" inputmode=\"decimal\" value=\"\(budget.map { "\($0)" } ?? "")\"></label>"
            body += "<button type=\"submit\">Plan</button></form>"
            // (A pool registered between the two reads: the plan again, for the pool shown.)
            let answer = planned == selected.pool ? try await planAnswer : try await plan(selected.pool)
            if let a = answer {
                let p = a.plan
                body += "<div class=\"cards\">"
                body += "<section class=\"card\" id=\"required-gpus\"><h2>GPUs needed</h2><div class=\"big\">\(p.requiredGPUs)</div>"
                body += "<div class=\"muted\">\(a.currentGPUs) provisioned now · \(p.requiredGPUs > a.currentGPUs ? "\(p.requiredGPUs - a.currentGPUs) more" : p.requiredGPUs < a.currentGPUs ? "\(a.currentGPUs - p.requiredGPUs) fewer" : "as now")</div></section>"
                body += "<section class=\"card\" id=\"forecast-peak\"><h2>Forecast peak busy GPUs (\(HTML.number(coverage * 100, 0))% coverage)</h2><div class=\"big\">\(HTML.number(p.forecastPeakBusyGPUs, 2))</div>"
                body += "<div class=\"muted\">observed peak \(HTML.number(p.peakBusyGPUs, 2)) over \(p.historyHours) hours</div></section>"
                body += "<section class=\"card\" id=\"plan-cost\"><h2>Cost of the plan over \(horizon) days</h2><div class=\"big\">\(p.planCostUSD.map(HTML.money) ?? "no rate")</div>"
                body += "<div class=\"muted\">\(a.usdPerGPUHour.map { "at \(HTML.money($0)) per GPU-hour" } ?? "the pool has no rate")</div></section>"
                if let budget {
                    body += "<section class=\"card\" id=\"plan-budget\"><h2>Against \(HTML.money(budget))</h2><div class=\"big \(p.fitsBudget == false ? "exceeded" : "")\">\(p.fitsBudget.map { $0 ? "fits" : "over budget" } ?? "—")</div>"
                    body += "<div class=\"muted\">the budget pays for \(p.affordableGPUs.map(String.init) ?? "—") GPUs</div></section>"
                }
                body += "</div><p class=\"muted\">\(HTML.escape(p.method))</p>"
                body += Self.planDays(p, start: a.planStart)
                if let options = a.options { body += Self.planOptions(options, horizon: horizon) }
            }
            body += "</section>"
            return Self.ok("Capacity", "/capacity", reader, body)
        }
    }

    /// The plan of each day of the horizon: a chart of its peak and the GPUs it needs, and the numbers.
    static func planDays(_ p: CapacityPlan, start: Timestamp) -> String {
        let dates = p.days.map { String(start.adding(seconds: Int64($0.offset) * 86_400).rfc3339.prefix(10)) }
        var out = "<section id=\"plan-days\"><h2>The plan per day</h2>"
        out += HTML.lines([HTML.Series(name: "Forecast peak busy GPUs", values: p.days.map(\.forecastPeakBusyGPUs)),
                           HTML.Series(name: "GPUs needed", values: p.days.map { Double($0.requiredGPUs) }, dashed: true, color: "#5b6475")],
                          labels: dates, title: "Forecast peak busy GPUs and GPUs needed per day of the horizon",
                          unit: { String(format: "%.1f GPUs", $0) })
        out += "<details><summary>The numbers</summary>"
        out += HTML.table(id: "plan-day-rows", headers: [("Day (24 h from)", false), ("Forecast peak busy GPUs", true), ("GPUs needed", true)],
                          rows: zip(dates, p.days).map { [$0, HTML.number($1.forecastPeakBusyGPUs, 2), "\($1.requiredGPUs)"] })
        return out + "</details></section>"
    }

    /// The forecast demand on each GPU type with a rate, cheapest first.
    static func planOptions(_ options: [CapacityPlanner.Option], horizon: Int) -> String {
        var out = "<section id=\"plan-types\"><h2>The same demand on other GPU types</h2>"
        out += "<p class=\"muted\">Each model's output tokens at the forecast peak, over its output tokens per busy GPU-second measured on each type "
            + "in the history. A type some model never ran on is not guessed.</p>"
        out += HTML.table(id: "plan-type-rows", headers: [("GPU type", false), ("GPUs needed", true), ("Per GPU-hour", true), ("Cost over \(horizon) days", true)],
                          rows: options.filter(\.measured).map { o in
                              [HTML.escape(o.accelerator), o.requiredGPUs.map(String.init) ?? "—",
                               o.usdPerGPUHour.map(HTML.money) ?? "no rate", o.planCostUSD.map(HTML.money) ?? "—"]
                          })
        let unmeasured = options.filter { !$0.measured }.map(\.accelerator)
        if !unmeasured.isEmpty {
            out += "<p class=\"muted\" id=\"plan-types-unmeasured\">Never measured for this demand: \(HTML.escape(unmeasured.joined(separator: ", "))).</p>"
        }
        return out + "</section>"
    }
}

extension ConsoleController {
    /// With `--prometheus-url`: each pool's last 24 hours as paid for, as its records account for
    /// and as its GPUs were busy (dcgm-exporter), and the paid cost of the idle hardware.
    func hardwareSection(_ hardware: PoolHardware, byPool: [(pool: String, hours: [StatsStore.PoolHour])], to: Timestamp, now: Timestamp) async throws -> String {
        let from = to.adding(hours: -24)
        let selectors = try await hardware.selectors()
        var rows: [[String]] = []
        for (pool, hours) in byPool {
            let ledger = hours.filter { $0.hour.microseconds >= from.microseconds }.reduce(0) { $0 + $1.busyGPUs * 3600 }
            let r = try await hardware.row(pool: pool, selector: selectors[pool], from: from, to: to, now: now, ledgerGPUSeconds: ledger)
            let paid = NSDecimalNumber(decimal: r.paidGPUSeconds).doubleValue / 3600
            if let f = r.figures {
                rows.append([HTML.escape(pool), "\(f.gpus)", HTML.number(paid, 2), HTML.number(ledger / 3600, 2),
                             HTML.number((r.busyGPUSeconds ?? 0) / 3600, 2), HTML.number(f.utilization * 100, 1) + "%",
                             f.memoryUsedRatioMax.map { HTML.number($0 * 100, 1) + "%" } ?? "—", r.idleAllocatedCost.map(HTML.money) ?? "—"])
            } else {
                rows.append([HTML.escape(pool), "—", HTML.number(paid, 2), HTML.number(ledger / 3600, 2), "—", "—", "—",
                             "<span class=\"muted\">\(HTML.escape(r.note ?? "no figures"))</span>"])
            }
        }
        var body = "<section id=\"hardware\"><h2>Hardware against the ledger, last 24 hours</h2>"
        body += "<p class=\"muted\">GPU-hours paid for (capacity), accounted for by the records, and busy in the hardware (dcgm-exporter through Prometheus, for pools with a gpu_selector); allocated but idle: the paid cost of the hours the hardware was not busy. \(from.rfc3339) to \(min(to, now).rfc3339).</p>"
        body += HTML.table(id: "hardware-table", headers: [("Pool", false), ("GPUs seen", true), ("Paid GPU-h", true), ("Records GPU-h", true),
                                                           ("Hardware busy GPU-h", true), ("Hardware utilization", true), ("Memory max", true),
                                                           ("Allocated but idle", true)], rows: rows)
        return body + "</section>"
    }
}
