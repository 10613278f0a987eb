/// Nelder–Mead simplex minimization (the standard coefficients: reflection 1, expansion 2,
/// contraction ½, shrink ½), for the few smoothing parameters of an ETS model.
public enum NelderMead {
    public struct Result: Sendable {
        public var x: [Double]
        public var value: Double
        public var evaluations: Int
    }

    /// Minimizes `f` from `start`, with initial steps `step` per coordinate, until the simplex's
    /// values agree to `tolerance` (relative) or `maxEvaluations` is spent.
    public static func minimize(_ f: ([Double]) -> Double, start: [Double], step: [Double],
                                tolerance: Double = 1e-9, maxEvaluations: Int = 2_000) -> Result {
        let n = start.count
        var evaluations = 0
        func eval(_ x: [Double]) -> Double {
            evaluations += 1
            let v = f(x)
            return v.isNaN ? .infinity : v
        }
        var simplex: [[Double]] = [start]
        for i in 0..<n {
            var p = start
            p[i] += step[i]
            simplex.append(p)
        }
        var values = simplex.map(eval)
        while evaluations < maxEvaluations {
            // Order best → worst.
            let order = values.indices.sorted { values[$0] < values[$1] }
            simplex = order.map { simplex[$0] }
            values = order.map { values[$0] }
            let best = values[0], worst = values[n]
            if abs(worst - best) <= tolerance * (abs(best) + 1e-300) || (worst - best).magnitude < 1e-300 { break }
            var centroid = [Double](repeating: 0, count: n)
            for p in simplex.dropLast() { for i in 0..<n { centroid[i] += p[i] / Double(n) } }
            func along(_ t: Double) -> [Double] { (0..<n).map { centroid[$0] + t * (simplex[n][$0] - centroid[$0]) } }
            let reflected = along(-1)
            let fr = eval(reflected)
            if fr < values[0] {
                let expanded = along(-2)
                let fe = eval(expanded)
                if fe < fr { simplex[n] = expanded; values[n] = fe } else { simplex[n] = reflected; values[n] = fr }
            } else if fr < values[n - 1] {
                simplex[n] = reflected; values[n] = fr
            } else {
                let outside = fr < values[n]
                let contracted = along(outside ? -0.5 : 0.5)
                let fc = eval(contracted)
                if fc < (outside ? fr : values[n]) {
                    simplex[n] = contracted; values[n] = fc
                } else {
                    for j in 1...n {
                        simplex[j] = (0..<n).map { simplex[0][$0] + 0.5 * (simplex[j][$0] - simplex[0][$0]) }
                        values[j] = eval(simplex[j])
                    }
                }
            }
        }
        let i = values.indices.min { values[$0] < values[$1] }!
        return Result(x: simplex[i], value: values[i], evaluations: evaluations)
    }
}
