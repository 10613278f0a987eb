import Foundation

/// The token weights that best explain measured GPU-seconds: over a pool's hours, the
/// non-negative least-squares fit of `gpu_seconds ≈ a·uncached_input + b·cached_input + c·output`
/// (each hour's sums over the records that carry GPU-seconds), so that an operator of a pool that
/// allocates by tokens can calibrate its weights instead of guessing them.
public enum TokenWeightFit {
    /// One pool-hour: the summed GPU-seconds and token counts of its measured records.
    public struct Hour: Sendable, Equatable {
        public var gpuSeconds: Double
        public var uncachedInput: Double
        public var cachedInput: Double
        public var output: Double
        public init(gpuSeconds: Double, uncachedInput: Double, cachedInput: Double, output: Double) {
            self.gpuSeconds = gpuSeconds; self.uncachedInput = uncachedInput; self.cachedInput = cachedInput; self.output = output
        }
    }

    public struct Result: Sendable, Equatable {
        /// GPU-seconds per token of each kind (input, cached input, output), all ≥ 0.
        public var secondsPerToken: (input: Double, cachedInput: Double, output: Double)
        /// The same as weights, scaled so that input = 1 (output = 1 when input weighs nothing):
        /// what `token_weights` takes.
        public var weights: (input: Double, cachedInput: Double, output: Double)
        /// The share of the hours' GPU-seconds variance the fit explains (1: all).
        public var rSquared: Double
        public var hours: Int

        public static func == (a: Result, b: Result) -> Bool {
            a.secondsPerToken == b.secondsPerToken && a.weights == b.weights && a.rSquared == b.rSquared && a.hours == b.hours
        }
    }

    /// The fit, or nil with fewer than 3 hours or nothing to explain. Exact NNLS for three
    /// unknowns: the least-squares solution on every subset of the columns, the best one whose
    /// coefficients are all ≥ 0.
    public static func fit(_ hours: [Hour]) -> Result? {
        guard hours.count >= 3 else { return nil }
        let xs: [[Double]] = hours.map { [$0.uncachedInput, $0.cachedInput, $0.output] }
        let y = hours.map(\.gpuSeconds)
        var best: (coef: [Double], sse: Double)?
        for mask in 1..<8 {
            let cols = (0..<3).filter { mask & (1 << $0) != 0 }
            guard let c = leastSquares(xs, y, cols), c.allSatisfy({ $0 >= 0 }) else { continue }
            var full = [0.0, 0.0, 0.0]
            for (k, col) in cols.enumerated() { full[col] = c[k] }
            let sse = zip(xs, y).reduce(0.0) { s, p in
                let r = p.1 - (full[0] * p.0[0] + full[1] * p.0[1] + full[2] * p.0[2]); return s + r * r
            }
            if best == nil || sse < best!.sse { best = (full, sse) }
        }
        guard let (coef, sse) = best else { return nil }
        let mean = y.reduce(0, +) / Double(y.count)
        let sst = y.reduce(0.0) { $0 + ($1 - mean) * ($1 - mean) }
        let scale = coef[0] > 0 ? coef[0] : (coef[2] > 0 ? coef[2] : max(coef[1], .leastNonzeroMagnitude))
        func round6(_ x: Double) -> Double { (x * 1e6).rounded() / 1e6 }
        return Result(secondsPerToken: (coef[0], coef[1], coef[2]),
                      weights: (round6(coef[0] / scale), round6(coef[1] / scale), round6(coef[2] / scale)),
                      rSquared: sst > 0 ? max(0, 1 - sse / sst) : (sse == 0 ? 1 : 0), hours: hours.count)
    }

    /// Ordinary least squares on the columns `cols` (normal equations, Gaussian elimination with
    /// partial pivoting); nil when they are collinear.
    static func leastSquares(_ xs: [[Double]], _ y: [Double], _ cols: [Int]) -> [Double]? {
        let n = cols.count
        var a = Array(repeating: Array(repeating: 0.0, count: n + 1), count: n)
        for (row, target) in zip(xs, y) {
            for i in 0..<n {
                for j in 0..<n { a[i][j] += row[cols[i]] * row[cols[j]] }
                a[i][n] += row[cols[i]] * target
            }
        }
        let norm = a.flatMap { $0.prefix(n) }.map(abs).max() ?? 0
        for i in 0..<n {
            guard let p = (i..<n).max(by: { abs(a[$0][i]) < abs(a[$1][i]) }), abs(a[p][i]) > 1e-12 * max(norm, 1) else { return nil }
            a.swapAt(i, p)
            for k in 0..<n where k != i {
                let f = a[k][i] / a[i][i]
                for j in i...n { a[k][j] -= f * a[i][j] }
            }
        }
        return (0..<n).map { a[$0][n] / a[$0][$0] }
    }
}
