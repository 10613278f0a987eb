import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

/// Planning over the ledger: budget status, spend forecasts and capacity plans. Every figure is
/// summed from the records (through the summaries) at the moment asked; `as_of`/`at` hides every
/// record at or after it.
public struct PlanningStore: Sendable {
    let db: Database
    let costs: CostStore
    let cache = ForecastCache()
    var logger: Logger { db.logger }

    public init(database: Database) {
        self.db = database
        self.costs = CostStore(database: database)
    }

    static let day = Timestamp.day
    /// Days of history a spend forecast is fitted on (at most).
    public static let historyDays: Int64 = 730
    /// Days of history a budget's forecast is fitted on: the rest of a period needs less than a
    /// spend forecast's two years, and `budget check --all` fits a thousand of them.
    public static let budgetHistoryDays: Int64 = 119
    /// Hours of history a capacity plan is fitted on (at most).
    public static let historyHours: Int64 = 28 * 24

    static func dateText(_ t: Timestamp) -> String { String(t.rfc3339.prefix(10)) }

    // MARK: - Daily spend history

    /// Daily usage cost before `before` (a midnight) over the history window, per tenant and in
    /// all, of one model or all, with the days on which the ledger had any record.
    struct History {
        var start: Timestamp
        var days: Int
        var byTenant: [String: [Int: Double]] = [:]
        var all: [Int: Double] = [:]
        var present: Set<Int> = []

        /// The series of `tenant` (nil: every tenant) from its first day with a record: a day
        /// the ledger had records but this series none is a zero; a day with no record in the
        /// whole ledger is missing (nil), not zero spend.
        func series(_ tenant: String?) -> [Double?] {
            let values = tenant.map { byTenant[$0] ?? [:] } ?? all
            guard let first = values.keys.min() else { return [] }
            return (first..<days).map { i in values[i] ?? (present.contains(i) ? 0 : nil) }
        }
    }

    /// The daily usage cost of the `days` days before `before`: per tenant when `perTenant`
    /// (every tenant, or just `tenant`), else of the selection in all; and the days on which
    /// the ledger had any record. Read from the daily summaries (the fleet's, unless a tenant is
    /// asked), priced as `/v1/costs` prices them, summed per day in PostgreSQL: one row per
    /// series comes back.
    func history(before: Timestamp, days: Int64, tenant: String? = nil, model: String? = nil, perTenant: Bool = false) async throws -> History {
        let start = Timestamp(microseconds: before.microseconds - days * Self.day)
        var q = SQLText()
        try await TokenShareCache.refresh(db, from: start, to: before, now: before)
        let base = ReportSQL.base(&q, from: start, to: before, tenant: tenant, model: model, fleet: !perTenant && tenant == nil,
                                  tokenCacheUntil: before)
        let s = q.bind(start), e = q.bind(before)
        let key = perTenant ? "tenant" : "''::text"
        let pricing = ReportSQL.pricing(&q, from: start, to: before, now: before)
        q.sql = """
            WITH \(ReportSQL.split),
            base AS (
            \(base)
            ),
            \(pricing),
            daily AS (
                SELECT \(key) AS k, floor(extract(epoch FROM hour - \(s)) / 86400)::int AS d,
                       (coalesce(sum(charge_gs * rate), 0) / 3600)::float8 AS c
                FROM priced GROUP BY 1, 2
            )
            SELECT k, array_agg(d ORDER BY d), array_agg(c ORDER BY d) FROM daily GROUP BY k
            UNION ALL
            SELECT NULL, array_agg(d ORDER BY d), NULL FROM (
                SELECT floor(extract(epoch FROM day - \(s)) / 86400)::int AS d FROM usage_daily_fleet_live
                WHERE day >= \(s) AND day < \(e) GROUP BY day) p
            """
        let query = q.query
        let logger = self.logger
        let count = Int(days)
        return try await db.withConnection { conn in
            var h = History(start: start, days: count)
            try await ReportSQL.noJIT(conn, logger)
            for try await (k, ds, cs) in try await conn.query(query, logger: logger).decode((String?, [Int32]?, [Double]?).self) {
                guard let ds else { continue }
                guard let k else { h.present.formUnion(ds.map(Int.init)); continue }
                for (d, c) in zip(ds, cs ?? []) {
                    if perTenant { h.byTenant[k, default: [:]][Int(d)] = c }
                    h.all[Int(d), default: 0] += c
                }
            }
            return h
        }
    }

    // MARK: - Spend forecast

    public struct SpendForecast: Sendable {
        public var method: String
        public var historyDays: Int
        public var points: [(date: String, p50: Decimal, lower: Decimal, upper: Decimal)]
        public var total: (p50: Decimal, lower: Decimal, upper: Decimal)
    }

    /// `GET /v1/forecast/spend`: daily usage cost of `tenant`/`model` (nil: all) from the history
    /// before the day of `asOf`, `horizon` days from that day on.
    public func forecastSpend(tenant: String?, model: String?, horizon: Int, level: Double, asOf: Timestamp) async throws -> SpendForecast {
        let first = asOf.dayStart
        let h = try await history(before: first, days: Self.historyDays, tenant: tenant, model: model)
        let series = h.series(nil)
        let dates = (0..<horizon).map { Self.dateText(Timestamp(microseconds: first.microseconds + Int64($0) * Self.day)) }
        guard let f = cache.forecast(series, horizon: horizon) else {
            let zero = Decimal(0)
            return SpendForecast(method: "no usage before as_of: nothing to forecast", historyDays: 0,
                                 points: dates.map { ($0, zero, zero, zero) }, total: (zero, zero, zero))
        }
        let intervals = f.intervals(level: level)
        let points = dates.indices.map { i in
            (dates[i], BudgetProjection.money(max(f.mean[i], 0)), BudgetProjection.money(intervals[i].lower), BudgetProjection.money(intervals[i].upper))
        }
        let sum = f.weightedSum(Array(repeating: 1, count: horizon), level: level)
        return SpendForecast(method: f.method, historyDays: series.compactMap { $0 }.count, points: points,
                             total: (BudgetProjection.money(sum.mean), BudgetProjection.money(sum.lower), BudgetProjection.money(sum.upper)))
    }

    // MARK: - Budget status

    /// The status of each budget at `at`: spend summed from the ledger for its period up to `at`,
    /// and the period's projection (spent plus the forecast of the rest); with `burnUp`, each
    /// one's day-by-day path too.
    public func statuses(_ budgets: [Budget], at: Timestamp, burnUp: Bool = false) async throws -> [BudgetStatus] {
        guard !budgets.isEmpty else { return [] }
        let today = at.dayStart
        // One tenant's (or the fleet's) budgets read only its rows; several, every tenant's.
        let asked = Set(budgets.map(\.tenant))
        // (nil: several; .some(nil): the fleet's only.)
        var only: String?? = nil
        if asked.count == 1, let single = asked.first { only = .some(single) }
        let history = try await history(before: today, days: Self.budgetHistoryDays, tenant: only ?? nil, perTenant: only == .some(nil) ? false : true)
        // Spend to date, per cadence (one report each), per tenant and day.
        var spentByCadence: [Budget.Cadence: [String?: [(day: String, amount: Decimal)]]] = [:]
        var totalRatio: [Budget.Cadence: [String?: Decimal]] = [:]
        for cadence in Set(budgets.map(\.period)) {
            let window = Budget.window(cadence, at: at)
            // Per tenant and day even for the fleet's budgets alone: the fleet's spend is then the
            // same sum of the same rows whichever budgets are asked about together (a list and a
            // single status agree to the last digit).
            let report = try await costs.costs(CostQuery(from: window.start, to: at, groupBy: [.day, .tenant], tenant: only ?? nil))
            var perKey: [String?: [(day: String, amount: Decimal)]] = [:]
            for row in report.rows {
                guard let dayText = row.group[0], let cost = CentRounding.decimal(row.costUSD) else { continue }
                if let tenant = row.group[1] { perKey[tenant, default: []].append((dayText, cost)) }
                if let last = perKey[nil]?.last, last.day == dayText {
                    perKey[nil]![perKey[nil]!.count - 1].amount += cost
                } else {
                    perKey[nil, default: []].append((dayText, cost))
                }
            }
            spentByCadence[cadence] = perKey
            if budgets.contains(where: { $0.period == cadence && $0.basis == .total }) {
                totalRatio[cadence] = try await totals(from: window.start, at: at)
            }
        }
        // Each budget's inputs; then one forecast per distinct (series, scale, horizon), fitted
        // concurrently (the fits are the costly part of a status, and independent).
        struct Input {
            var budget: Budget
            var window: (start: Timestamp, end: Timestamp)
            var byDay: [(day: String, amount: Decimal)]
            var spent: Decimal
            var scale: Double
            var days: [String] = []
            var weights: [Double] = []
            var forecastKey: String { "\(budget.tenant ?? "\u{0}")|\(scale)|\(days.count)" }
        }
        var inputs: [Input] = []
        for budget in budgets {
            let window = Budget.window(budget.period, at: at)
            var byDay = spentByCadence[budget.period]?[budget.tenant] ?? []
            let usageSpent = byDay.reduce(Decimal(0)) { $0 + $1.amount }
            var spent = usageSpent
            var scale = 1.0
            if budget.basis == .total {
                let total = totalRatio[budget.period]?[budget.tenant] ?? usageSpent
                spent = total
                if usageSpent > 0 {
                    let ratio = total / usageSpent
                    scale = NSDecimalNumber(decimal: ratio).doubleValue
                    byDay = byDay.map { ($0.day, $0.amount * ratio) }
                }
            }
            var input = Input(budget: budget, window: window, byDay: byDay, spent: spent, scale: scale)
            // The rest of the period: the remainder of today, then whole days.
            var d = today
            while d.microseconds < window.end.microseconds {
                input.days.append(Self.dateText(d))
                let from = max(d.microseconds, at.microseconds)
                input.weights.append(Double(d.microseconds + Self.day - from) / Double(Self.day))
                d = Timestamp(microseconds: d.microseconds + Self.day)
            }
            inputs.append(input)
        }
        var jobs: [String: (series: [Double?], horizon: Int)] = [:]
        for input in inputs where !input.days.isEmpty && jobs[input.forecastKey] == nil {
            var series = history.series(input.budget.tenant)
            if input.scale != 1 { series = series.map { $0.map { $0 * input.scale } } }
            jobs[input.forecastKey] = (series, input.days.count)
        }
        let forecasts = await forecastAll(jobs)
        var out: [BudgetStatus] = []
        for input in inputs {
            let budget = input.budget
            let forecast = input.days.isEmpty ? nil : forecasts[input.forecastKey] ?? nil
            let p = BudgetProjection.project(budget: budget, spent: input.spent, spentByDay: input.byDay, forecast: forecast,
                                             days: input.days, weights: input.weights)
            let (state, crossed) = BudgetStatus.state(budget: budget, spent: input.spent, forecastP50: p.p50)
            var method = budget.basis == .total
                ? "spend: usage cost plus idle share (the rest forecast at the period's ratio of total to usage)" : "spend: usage cost"
            method += "; forecast: " + (forecast?.method ?? "none (no history)")
            var status = BudgetStatus(budget: budget, periodStart: input.window.start, periodEnd: input.window.end, spent: input.spent,
                                      forecastP10: p.p10, forecastP50: p.p50, forecastP90: p.p90, projectedExhaustionDate: p.exhaustion,
                                      state: state, thresholdsCrossed: crossed, method: method)
            if burnUp {
                status.burnUp = BudgetProjection.burnUp(spent: input.spent, spentByDay: input.byDay, forecast: forecast,
                                                        days: input.days, weights: input.weights)
            }
            out.append(status)
        }
        return out
    }

    /// Daily forecasts of several series, on every core.
    func forecastAll(_ jobs: [String: (series: [Double?], horizon: Int)]) async -> [String: Forecaster.Forecast?] {
        let keys = Array(jobs.keys)
        let cache = self.cache
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, keys.count))
        return await withTaskGroup(of: [(String, Forecaster.Forecast?)].self) { group in
            for w in 0..<workers {
                group.addTask {
                    stride(from: w, to: keys.count, by: workers).map { i in
                        let job = jobs[keys[i]]!
                        return (keys[i], cache.forecast(job.series, horizon: job.horizon, concurrent: false))
                    }
                }
            }
            var out: [String: Forecaster.Forecast?] = [:]
            for await part in group { for (k, f) in part { out[k] = f } }
            return out
        }
    }

    /// Usage plus idle share per tenant (nil: the fleet's paid total) over `[from, at)`, from the
    /// chargeback of each month in it, counted up to `at`.
    func totals(from: Timestamp, at: Timestamp) async throws -> [String?: Decimal] {
        var out: [String?: Decimal] = [:]
        var month = Period.containing(from)
        while month.start.microseconds < at.microseconds {
            // Totals only: every tenant's cents need every tenant's sums, not its lines.
            let items = try await costs.chargebackItems(period: month, now: at, usageUntil: at, detail: .tenantTotals)
            let cb = Chargeback.assemble(period: month, items: items)
            for t in cb.tenants { out[t.tenant, default: 0] += t.totalCost }
            out[nil, default: 0] += cb.fleet.totalCost
            month = month.next
        }
        return out
    }

    // MARK: - Capacity

    public struct CapacityQuery: Sendable {
        public var pool: String?
        public var accelerator: String?
        public var model: String?
        public var horizonDays: Int
        public var targetUtilization: Double
        public var coverage: Double
        public var budgetUSD: Decimal?
        public var asOf: Timestamp
        /// Accelerator types to price the forecast demand on (nil: no comparison; empty: every
        /// type with a default rate).
        public var compare: [String]?
        public init(pool: String?, accelerator: String?, model: String?, horizonDays: Int, targetUtilization: Double, coverage: Double = 0.9,
                    budgetUSD: Decimal?, asOf: Timestamp, compare: [String]? = nil) {
            self.pool = pool; self.accelerator = accelerator; self.model = model; self.horizonDays = horizonDays
            self.targetUtilization = targetUtilization; self.coverage = coverage; self.budgetUSD = budgetUSD; self.asOf = asOf
            self.compare = compare
        }
    }

    public struct CapacityAnswer: Sendable {
        public var plan: CapacityPlan
        /// Where the plan's first day starts (the hour of `as_of`).
        public var planStart: Timestamp
        public var currentGPUs: Int
        public var usdPerGPUHour: Decimal?
        /// Output tokens per busy GPU-second, per model, over the history.
        public var outputTokensPerGPUSecond: [(model: String, value: Double)]
        /// The demand priced on each compared accelerator type, cheapest first.
        public var options: [CapacityPlanner.Option]?
    }

    /// The whole UTC days in `[from, to)`: from the first midnight at or after `from` to the last
    /// at or before `to` (an empty range, both at `to`, when no whole day fits). The hours of
    /// `[from, to)` outside it are `[from, first)` and `[last, to)`.
    static func wholeDays(from: Timestamp, to: Timestamp) -> (Timestamp, Timestamp) {
        let first = from.dayStart == from ? from : from.dayStart.adding(days: 1)
        let last = to.dayStart
        return first < last ? (first, last) : (to, to)
    }

    /// Nil when the pool is unknown.
    public func capacity(_ q: CapacityQuery) async throws -> CapacityAnswer? {
        let logger = self.logger
        let end = q.asOf.hourStart
        let start = end.adding(hours: -Self.historyHours)
        var sql = SQLText()
        let selection = q.pool.map { "pool = \(sql.bind($0))" } ?? "accelerator = \(sql.bind(q.accelerator ?? ""))"
        let poolSelection = q.pool.map { "p.name = \(sql.bind($0))" } ?? "p.accelerator = \(sql.bind(q.accelerator ?? ""))"
        let modelFilter = q.model.map { " AND model = \(sql.bind($0))" } ?? ""
        let s = sql.bind(start), e = sql.bind(end), asOf = sql.bind(q.asOf)
        // A pool that allocates by tokens rarely measures GPU-seconds: its busy GPUs per hour are
        // the hour's token weight over the most weight one paid GPU-hour of the pool carried in
        // the history (that hour taken as running flat out).
        var byTokens = false
        if let pool = q.pool { byTokens = try await PoolStore(database: db).get(pool)?.0.allocation == .tokens }
        let busyRows: String
        if byTokens, let pool = q.pool {
            let b = sql.bind(pool)
            let selected = q.model.map { "u.model = \(sql.bind($0))" } ?? "true"
            busyRows = """
                SELECT 'h', (extract(epoch FROM hour) * 1000000)::bigint, (w / nullif(tp, 0))::float8, NULL::float8, NULL::text, NULL::text
                FROM (
                    WITH \(ReportSQL.tcap),
                    w AS (
                        SELECT u.pool, u.hour, sum(\(ReportSQL.weight("u", "p"))) FILTER (WHERE \(selected)) AS w, sum(\(ReportSQL.weight("u", "p"))) AS wall
                        FROM usage_hourly_live u JOIN pools p ON p.name = u.pool AND p.accelerator = u.accelerator
                        WHERE u.pool = \(b) AND u.hour >= \(s) AND u.hour < \(e) GROUP BY u.pool, u.hour),
                    pv AS (
                        SELECT w.hour, coalesce(w.w, 0) AS w, w.wall, \(ReportSQL.paidGPUSeconds("w", now: e)) AS gs
                        FROM w)
                    SELECT hour, w, (SELECT max(wall / (gs / 3600)) FROM pv WHERE gs > 0) AS tp FROM pv
                ) x
                """
        } else {
            busyRows = """
                SELECT 'h', (extract(epoch FROM hour) * 1000000)::bigint, (sum(gpu_seconds) / 3600)::float8, NULL::float8, NULL::text, NULL::text
                FROM sel GROUP BY hour
                """
        }
        // Rows: h (busy GPUs per hour), m (per model: output tokens per GPU-second, GPU-seconds),
        // g (provisioned GPUs), r (the rate), p (the pool and its accelerator); when comparing,
        // t (per model and accelerator, anywhere: output tokens per GPU-second) and x (each
        // accelerator's default rate).
        // `sel`: the selection's summary rows of the history, read once (by the pool's or the
        // accelerator's index range).
        sql.sql = """
            WITH sel AS MATERIALIZED (
                SELECT hour, model, gpu_seconds, output_tokens FROM usage_hourly_live
                WHERE \(selection)\(modelFilter) AND hour >= \(s) AND hour < \(e))
            \(busyRows)
            UNION ALL
            SELECT 'm', NULL, (sum(output_tokens) / nullif(sum(gpu_seconds), 0))::float8, sum(gpu_seconds)::float8, model, NULL
            FROM sel GROUP BY model
            UNION ALL
            SELECT 'g', NULL, coalesce(sum(gpus), 0)::float8, NULL, NULL, NULL FROM (
                SELECT DISTINCT ON (c.pool) c.gpus FROM pool_capacity c JOIN pools p ON p.name = c.pool
                WHERE \(poolSelection) AND c.at <= \(asOf) ORDER BY c.pool, c.at DESC) g
            UNION ALL
            SELECT 'r', NULL, NULL, NULL, coalesce(p.usd_per_gpu_hour, r.usd_per_gpu_hour)::text, NULL
            FROM (SELECT * FROM pools p WHERE \(q.pool == nil ? "false" : poolSelection)) p
            LEFT JOIN LATERAL (SELECT usd_per_gpu_hour FROM rates r WHERE r.retired_at IS NULL AND r.provider = p.provider
                AND r.region = p.region AND r.accelerator = p.accelerator AND r.tier = p.tier AND r.effective_from <= \(asOf)
                ORDER BY effective_from DESC LIMIT 1) r ON true
            UNION ALL
            SELECT 'r', NULL, NULL, NULL, r.usd_per_gpu_hour::text, NULL FROM default_rates d
            JOIN LATERAL (SELECT usd_per_gpu_hour FROM rates r WHERE r.retired_at IS NULL AND r.provider = d.provider
                AND r.region = d.region AND r.accelerator = d.accelerator AND r.tier = d.tier AND r.effective_from <= \(asOf)
                ORDER BY effective_from DESC LIMIT 1) r ON true
            WHERE \(q.pool == nil ? "d.accelerator = \(sql.bind(q.accelerator ?? ""))" : "false")
            UNION ALL
            SELECT 'p', NULL, NULL, NULL, name, accelerator FROM pools p WHERE \(q.pool == nil ? "false" : poolSelection)
            """
        if let compare = q.compare {
            let accelerators = compare.isEmpty ? "true" : "d.accelerator = ANY(\(sql.bind(compare)))"
            // Every accelerator's throughput on the selection's models over the history: its whole
            // UTC days from the fleet's daily summary (a few hundred rows a month, not every
            // tenant's hours), the hours before the first and after the last whole day hourly.
            let (ds, de) = Self.wholeDays(from: start, to: end)
            let firstDay = sql.bind(ds), lastDay = sql.bind(de)
            sql.sql += """

                UNION ALL
                SELECT 't', NULL, (sum(u.output_tokens) / nullif(sum(u.gpu_seconds), 0))::float8, NULL, u.model, u.accelerator
                FROM (
                    SELECT model, accelerator, output_tokens, gpu_seconds FROM usage_daily_fleet_live WHERE day >= \(firstDay) AND day < \(lastDay)
                    UNION ALL
                    SELECT model, accelerator, output_tokens, gpu_seconds FROM usage_hourly_live WHERE hour >= \(s) AND hour < \(firstDay)
                    UNION ALL
                    SELECT model, accelerator, output_tokens, gpu_seconds FROM usage_hourly_live WHERE hour >= \(lastDay) AND hour < \(e)
                ) u WHERE u.model IN (SELECT DISTINCT model FROM sel)
                GROUP BY u.model, u.accelerator
                UNION ALL
                SELECT 'x', NULL, NULL, NULL, d.accelerator, r.usd_per_gpu_hour::text FROM default_rates d
                JOIN LATERAL (SELECT usd_per_gpu_hour FROM rates r WHERE r.retired_at IS NULL AND r.provider = d.provider
                    AND r.region = d.region AND r.accelerator = d.accelerator AND r.tier = d.tier AND r.effective_from <= \(asOf)
                    ORDER BY effective_from DESC LIMIT 1) r ON true
                WHERE \(accelerators)
                """
        }
        let query = sql.query
        return try await db.withConnection { conn -> CapacityAnswer? in
            try await ReportSQL.noJIT(conn, logger)
            var busy: [Int: Double] = [:]
            var tokens: [(String, Double)] = []
            var demand: [CapacityPlanner.ModelDemand] = []
            var throughput: [String: [String: Double]] = [:]
            var rates: [String: Decimal] = [:]
            var gpus = 0
            var rate: Decimal?
            var poolAccelerator: String?
            var poolFound = false
            for try await (kind, hour, value, value2, text, text2) in try await conn.query(query, logger: logger)
                .decode((String, Int64?, Double?, Double?, String?, String?).self) {
                switch kind {
                case "h": if let hour, let value { busy[Int((hour - start.microseconds) / Timestamp.hour)] = value }
                case "m":
                    if let text, let value { tokens.append((text, value)) }
                    if let text { demand.append(.init(model: text, share: value2 ?? 0, outputTokensPerGPUSecond: value ?? 0)) }
                case "g": gpus = Int(value ?? 0)
                case "r": rate = text.flatMap(CentRounding.decimal)
                case "p": poolFound = true; poolAccelerator = text2
                case "t": if let text, let text2, let value { throughput[text, default: [:]][text2] = value }
                case "x": if let text, let r = text2.flatMap(CentRounding.decimal) { rates[text] = r }
                default: break
                }
            }
            if q.pool != nil && !poolFound { return nil }
            let series: [Double?]
            if let first = busy.keys.min() {
                series = (first..<Int(Self.historyHours)).map { busy[$0] ?? 0 }
            } else {
                series = []
            }
            let plan = CapacityPlanner.plan(busyGPUs: series, horizonHours: q.horizonDays * 24, targetUtilization: q.targetUtilization,
                                            coverage: q.coverage, usdPerGPUHour: rate, budgetUSD: q.budgetUSD, currentGPUs: gpus)
            var options: [CapacityPlanner.Option]?
            if let compare = q.compare {
                let current = poolAccelerator ?? q.accelerator
                // The selection's own rate stands for its accelerator (a pool may have a price of its own).
                if let current, let rate { rates[current] = rate }
                let total = demand.reduce(0) { $0 + $1.share }
                let shares = demand.map { CapacityPlanner.ModelDemand(model: $0.model, share: total > 0 ? $0.share / total : 0,
                                                                      outputTokensPerGPUSecond: $0.outputTokensPerGPUSecond) }
                let candidates = compare.isEmpty ? Array(Set(rates.keys).union(current.map { [$0] } ?? [])).sorted() : compare
                options = CapacityPlanner.compare(peakBusyGPUs: plan.forecastPeakBusyGPUs, demand: shares, current: current, throughput: throughput,
                                                  rates: rates, candidates: candidates, horizonHours: q.horizonDays * 24,
                                                  targetUtilization: q.targetUtilization)
            }
            return CapacityAnswer(plan: plan, planStart: end, currentGPUs: gpus, usdPerGPUHour: rate,
                                  outputTokensPerGPUSecond: tokens.sorted { $0.0 < $1.0 }, options: options)
        }
    }
}

/// Daily forecasts by their exact input (the series and the horizon): a forecast is a pure
/// function of its history, and a history before today changes only when late records or a
/// re-pricing change it, so a budget check repeated within a day refits nothing that did not
/// change. Bounded: emptied when it reaches `capacity` entries.
final class ForecastCache: @unchecked Sendable {
    struct Key: Hashable {
        var series: [Double?]
        var horizon: Int
    }
    private let lock = NSLock()
    private var entries: [Key: Forecaster.Forecast?] = [:]
    let capacity = 20_000

    func forecast(_ series: [Double?], horizon: Int, concurrent: Bool = true) -> Forecaster.Forecast? {
        let key = Key(series: series, horizon: horizon)
        lock.lock()
        if let hit = entries[key] { lock.unlock(); return hit }
        lock.unlock()
        let f = Forecaster.daily.forecast(series, horizon: horizon, concurrent: concurrent)
        lock.lock()
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[key] = f
        lock.unlock()
        return f
    }
}
