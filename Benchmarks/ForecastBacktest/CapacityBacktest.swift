// Rolling-origin backtest of the capacity planner itself: does the plan hold the realized peak,
// and how much does it buy beyond what that peak needed?
import Foundation
import GPULedgerCore
import GPULedgerTestSupport

/// `weeks` of hourly busy GPUs: a daily curve (quiet nights, a busy afternoon), weekends at
/// 65–70%, growth of −0.5…+1.2% a day, 4% hour-to-hour noise and a burst of 1–3 hours at
/// +10…40% about once a week.
func generatedHourlyDemand(seed: UInt64, weeks: Int = 8) -> [Double] {
    var rng = SplitMix64(state: seed)
    func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * Double(rng.next() >> 11) * 0x1p-53 }
    let daily = [0.45, 0.4, 0.38, 0.37, 0.4, 0.5, 0.65, 0.8, 0.9, 0.95, 1.0, 1.0, 0.98, 0.97, 0.95, 0.93, 0.9, 0.88, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5]
    let weekly = [1.0, 1.03, 1.05, 1.02, 0.98, 0.7, 0.65]
    let growth = uniform(-0.005, 0.012)
    var level = 40 * uniform(0.3, 3)
    var burstHours = 0, burst = 1.0
    var out: [Double] = []
    for t in 0..<(weeks * 168) {
        if t % 24 == 0 { level *= Foundation.exp(growth + 0.02 * rng.gaussian()) }
        var v = level * daily[t % 24] * weekly[(t / 24) % 7] * Foundation.exp(0.04 * rng.gaussian())
        if burstHours > 0 {
            v *= burst; burstHours -= 1
        } else if uniform(0, 1) < 1.0 / 168 {
            burst = uniform(1.1, 1.4); burstHours = Int(uniform(0, 3)); v *= burst
        }
        out.append(v)
    }
    return out
}

/// The three ServeGen language models' hourly requests as busy GPUs (0.05 GPU-seconds a request).
func serveGenBusyGPUs(_ path: String) -> [(String, [Double])] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    var series: [String: [Int: Double]] = [:]
    for line in text.split(whereSeparator: \.isNewline).dropFirst() {
        let f = line.split(separator: ",", omittingEmptySubsequences: false)
        guard f.count > 5, f[1] == "language", let hour = Int(f[2]), let requests = Double(f[5]) else { continue }
        series[String(f[0]), default: [:]][hour] = requests * 0.05 / 3600
    }
    return series.keys.sorted().map { name in
        let hours = series[name]!
        return ("ServeGen \(name)", (0...(hours.keys.max() ?? -1)).map { hours[$0] ?? 0 })
    }
}

struct PlanOutcome { var held: Bool; var waste: Double }

func summary(_ outcomes: [PlanOutcome]) -> (held: Double, median: Double, p90: Double) {
    let w = outcomes.map(\.waste).sorted()
    guard !w.isEmpty else { return (0, 0, 0) }
    return (Double(outcomes.filter(\.held).count) / Double(outcomes.count), w[w.count / 2], w[min(w.count - 1, Int(0.9 * Double(w.count)))])
}

func capacityBacktest(series: [(String, [Double])], coverage: Double, horizons: [Int] = [1, 2, 7], targets: [Double] = [0.6, 0.7, 0.8]) {
    let rules = [1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3]
    var ours: [String: [PlanOutcome]] = [:], naive: [Double: [String: [PlanOutcome]]] = [:]
    var byHorizon: [Int: [PlanOutcome]] = [:], naiveByHorizon: [Double: [Int: [PlanOutcome]]] = [:]
    var times: [Double] = []
    for (name, y) in series {
        let days = y.count / 24
        for origin in stride(from: 7, to: days, by: 1) {
            let history = Array(y[..<(origin * 24)])
            let lastWeekPeak = history.suffix(7 * 24).max() ?? 0
            for h in horizons where origin + h <= days {
                let realized = y[(origin * 24)..<((origin + h) * 24)].max()!
                for target in targets {
                    let floor = CapacityPlanner.gpus(forBusy: realized, target: target)
                    guard floor > 0 else { continue }
                    let clock = ContinuousClock.now
                    let plan = CapacityPlanner.plan(busyGPUs: history.map { $0 }, horizonHours: h * 24, targetUtilization: target, coverage: coverage,
                                                    usdPerGPUHour: nil, budgetUSD: nil, currentGPUs: 0)
                    let e = ContinuousClock.now - clock
                    times.append(Double(e.components.seconds) * 1000 + Double(e.components.attoseconds) / 1e15)
                    let outcome = PlanOutcome(held: plan.requiredGPUs >= floor, waste: Double(plan.requiredGPUs) / Double(floor) - 1)
                    ours[name, default: []].append(outcome)
                    byHorizon[h, default: []].append(outcome)
                    for k in rules {
                        let r = CapacityPlanner.gpus(forBusy: lastWeekPeak * k, target: target)
                        let o = PlanOutcome(held: r >= floor, waste: Double(r) / Double(floor) - 1)
                        naive[k, default: [:]][name, default: []].append(o)
                        naiveByHorizon[k, default: [:]][h, default: []].append(o)
                    }
                }
            }
        }
    }
    func line(_ label: String, _ o: [PlanOutcome]) -> String {
        let s = summary(o)
        return "\(label.padding(toLength: 40, withPad: " ", startingAt: 0)) \(String(format: "%5.1f%%  %6.1f%%  %6.1f%%", s.held * 100, s.median * 100, s.p90 * 100))  \(String(format: "%5d", o.count))"
    }
    say("\nCapacity plans: held (required ≥ ⌈realized peak / target⌉) and waste (required / that − 1); origins every 24 h from day 7, horizons \(horizons.map(String.init).joined(separator: "/")) days, targets \(targets.map { String(format: "%.1f", $0) }.joined(separator: "/")), coverage=\(coverage)")
    say("  series / rule" + String(repeating: " ", count: 28) + "held   median     p90  plans")
    var all: [PlanOutcome] = []
    for (name, _) in series {
        let o = ours[name] ?? []
        all += o
        say("  " + line("\(name): planner", o))
        let best = rules.min { a, b in
            // The rule closest to the planner's share held, for a like-for-like comparison.
            abs(summary(naive[a]![name]!).held - summary(o).held) < abs(summary(naive[b]![name]!).held - summary(o).held)
        }!
        say("  " + line("\(name): 7-day peak × \(String(format: "%.2f", best))", naive[best]![name]!))
    }
    say("  " + line("all series: planner", all))
    for k in rules {
        say("  " + line("all series: 7-day peak × \(String(format: "%.2f", k))", naive[k]!.values.flatMap { $0 }))
    }
    for h in horizons {
        say("  " + line("\(h)-day horizon: planner", byHorizon[h] ?? []))
        for k in [1.0, 1.05, 1.1, 1.15, 1.2] { say("  " + line("\(h)-day horizon: 7-day peak × \(String(format: "%.2f", k))", naiveByHorizon[k]?[h] ?? [])) }
    }
    times.sort()
    say(String(format: "  plan time: p50 %.2f ms, max %.2f ms", times[times.count / 2], times.last ?? 0))
}
