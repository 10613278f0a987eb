// Rolling-origin backtests of the spend forecaster, the hourly forecaster and the capacity planner.
//
//   swift build -c release && .build/release/gpuledger-backtest [--series 5] [--seed 1] [--dump-series FILE]
//       [--capacity-only] [--coverage 0.9] [--servegen PATH]
//
// Daily: generated two-year series (trend, weekly season, persistent level shocks, noise), origins
// 7 days apart over the second year, horizons 7, 14 and 28 days. Hourly: the ServeGen hourly
// request counts (../shared/data/traces/servegen_hourly.csv, the three language models summed),
// origins 24 hours apart after the first week, horizons 24, 48 and 72 hours. Prints MASE (scaled
// by the in-sample seasonal-naive error), sMAPE, and the coverage of the 80% interval for the
// points and for the h-step totals, for the forecaster and for the seasonal-naive forecast.
import Foundation
import GPULedgerCore
import GPULedgerTestSupport

checkArguments(program: "gpuledger-backtest", source: "Benchmarks/ForecastBacktest/main.swift",
               values: ["--series", "--seed", "--coverage", "--dump-series", "--servegen"], flags: ["--additive-only", "--capacity-only"])

/// Prints a line at once (stdout is block-buffered when piped).
func say(_ line: String) { print(line); fflush(nil) }

/// Two years of daily spend: a growing level with occasional persistent jumps, a weekday/weekend
/// pattern, and day-to-day noise.
func generatedSeries(seed: UInt64, days: Int = 730) -> [Double] {
    var rng = SplitMix64(state: seed)
    let weekly = [1.08, 1.12, 1.10, 1.06, 1.00, 0.84, 0.80]
    var level = 1_000.0
    var out: [Double] = []
    for t in 0..<days {
        level *= 1.001 + 0.004 * rng.gaussian()
        if Double.random(in: 0..<1, using: &rng) < 0.01 { level *= 1 + 0.08 * rng.gaussian() }
        out.append(max(level * (weekly[t % 7] + 0.05 * rng.gaussian()), 0))
    }
    return out
}

struct Score {
    var mase: [Double] = [], smape: [Double] = [], pointCover: [Double] = [], totalCover: [Double] = []
    mutating func add(train: [Double], test: [Double], mean: [Double], intervals: [(Double, Double)]?, total: (Double, Double)?, period: Int) {
        var scale = 0.0
        for t in period..<train.count { scale += abs(train[t] - train[t - period]) }
        scale /= Double(train.count - period)
        let h = test.count
        mase.append(zip(test, mean).reduce(0) { $0 + abs($1.0 - $1.1) } / Double(h) / scale)
        smape.append(zip(test, mean).reduce(0) { acc, p in
            let d = abs(p.0) + abs(p.1)
            return acc + (d == 0 ? 0 : 2 * abs(p.0 - p.1) / d)
        } / Double(h) * 100)
        if let intervals {
            pointCover.append(Double(zip(test, intervals).filter { $0.0 >= $0.1.0 && $0.0 <= $0.1.1 }.count) / Double(h))
        }
        if let total {
            let sum = test.reduce(0, +)
            totalCover.append(sum >= total.0 && sum <= total.1 ? 1 : 0)
        }
    }
    static func avg(_ x: [Double]) -> String { x.isEmpty ? "   -  " : String(format: "%6.3f", x.reduce(0, +) / Double(x.count)) }
}

func backtest(name: String, series: [[Double]], period: Int, forecaster: Forecaster, firstOrigin: Int, step: Int, horizons: [Int], unit: String) {
    var ours = [Int: Score](), naive = [Int: Score]()
    var methods = [String: Int]()
    var fitTimes: [Double] = []
    for y in series {
        var origin = firstOrigin
        while origin + horizons.max()! <= y.count {
            let train = Array(y[..<origin])
            let clock = ContinuousClock.now
            guard let f = forecaster.forecast(train.map { $0 }, horizon: horizons.max()!, unit: unit) else { fatalError("no forecast") }
            let elapsed = ContinuousClock.now - clock
            fitTimes.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
            let key = f.method.components(separatedBy: " chosen").first! + (f.combined ? " + seasonal naive" : "")
            methods[key, default: 0] += 1
            let intervals = f.intervals(level: 0.8)
            let sn = Forecaster.seasonalNaive(train.map { $0 }, period: period, horizon: horizons.max()!).map { $0! }
            for h in horizons {
                let test = Array(y[origin..<(origin + h)])
                let total = f.weightedSum(Array(repeating: 1, count: h), level: 0.8)
                ours[h, default: Score()].add(train: train, test: test, mean: Array(f.mean.prefix(h)),
                                              intervals: Array(intervals.prefix(h)), total: (total.lower, total.upper), period: period)
                naive[h, default: Score()].add(train: train, test: test, mean: Array(sn.prefix(h)), intervals: nil, total: nil, period: period)
            }
            origin += step
        }
    }
    say("\n\(name)")
    say("  horizon   MASE  (s-naive)   sMAPE% (s-naive)  80% cover: points  totals   forecasts")
    for h in horizons {
        let o = ours[h]!, n = naive[h]!
        say("  \(String(h).padding(toLength: 7, withPad: " ", startingAt: 0)) \(Score.avg(o.mase))  (\(Score.avg(n.mase)))   \(Score.avg(o.smape))  (\(Score.avg(n.smape)))          \(Score.avg(o.pointCover))  \(Score.avg(o.totalCover))   \(o.mase.count)")
    }
    fitTimes.sort()
    say("  models chosen: " + methods.sorted { $0.value > $1.value }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
    say(String(format: "  forecast time per origin: p50 %.1f ms, max %.1f ms (history %d–%d %@)", fitTimes[fitTimes.count / 2], fitTimes.last!,
                 firstOrigin, series[0].count - horizons.max()!, unit))
}

let servegenPath = stringOption("--servegen", "../shared/data/traces/servegen_hourly.csv")
let coverage = Double(stringOption("--coverage", "0.9")) ?? 0.9
let capacitySeries = serveGenBusyGPUs(servegenPath) + (0..<6).map { ("generated \($0 + 1) (8 weeks)", generatedHourlyDemand(seed: 101 + UInt64($0))) }
if capacitySeries.count < 9 { say("(ServeGen hourly data not found at \(servegenPath): pass --servegen PATH; generated series only)") }
capacityBacktest(series: capacitySeries, coverage: coverage)
// The case a new user tried: ServeGen m-large, as of day 10, 4 days at 70%.
if let large = capacitySeries.first(where: { $0.0 == "ServeGen m-large" })?.1, large.count >= 14 * 24 {
    let plan = CapacityPlanner.plan(busyGPUs: large[..<240].map { $0 }, horizonHours: 96, targetUtilization: 0.7, coverage: coverage,
                                    usdPerGPUHour: nil, budgetUSD: nil, currentGPUs: 0)
    let real = large[240..<336].max()!
    say(String(format: "  ServeGen m-large as of day 10, 4 days at 70%%: %d GPUs for a forecast peak of %.2f busy (the real peak %.2f needs %d)",
               plan.requiredGPUs, plan.forecastPeakBusyGPUs, real, CapacityPlanner.gpus(forBusy: real, target: 0.7)))
    say("  days: " + plan.days.map { "\($0.requiredGPUs)" }.joined(separator: ", ") + "; " + plan.method)
}
if CommandLine.arguments.contains("--capacity-only") { exit(0) }

var dailyForecaster = Forecaster.daily
dailyForecaster.logModels = !CommandLine.arguments.contains("--additive-only")
let seriesCount = option("--series", 5)
let seed = UInt64(option("--seed", 1))
let daily = (0..<seriesCount).map { generatedSeries(seed: seed &+ UInt64($0) &* 7919) }
// --dump-series FILE: the generated daily series as CSV (series,t,y), for scripts/autoets_backtest.py.
let dump = stringOption("--dump-series", "")
if !dump.isEmpty {
    var csv = "series,t,y\n"
    for (k, y) in daily.enumerated() { for (t, v) in y.enumerated() { csv += "\(k),\(t),\(v)\n" } }
    try csv.write(toFile: dump, atomically: true, encoding: .utf8)
}
backtest(name: "Daily spend: \(seriesCount) generated two-year series (trend, weekly season, persistent shocks), origins every 7 days from day 365",
         series: daily, period: 7, forecaster: dailyForecaster, firstOrigin: 365, step: 7, horizons: [7, 14, 28], unit: "days")

// The ServeGen hourly requests of the three language models, summed per hour.
let path = servegenPath
if let text = try? String(contentsOfFile: path, encoding: .utf8) {
    var hourly = [Int: Double]()
    for line in text.split(whereSeparator: \.isNewline).dropFirst() {
        let f = line.split(separator: ",", omittingEmptySubsequences: false)
        guard f.count > 5, f[1] == "language", let hour = Int(f[2]), let requests = Double(f[5]) else { continue }
        hourly[hour, default: 0] += requests
    }
    guard let last = hourly.keys.max() else { fatalError("no language-model rows in \(path)") }
    let y = (0..<(last + 1)).map { hourly[$0] ?? 0 }
    backtest(name: "Hourly demand: ServeGen language models (\(y.count) hours), origins every 24 hours from hour 168",
             series: [y], period: 24, forecaster: .hourly, firstOrigin: 168, step: 24, horizons: [24, 48, 72], unit: "hours")
} else {
    say("\n(ServeGen hourly data not found at \(path): pass --servegen PATH)")
}
