import Foundation

/// How a pool splits its paid GPU time (contract section 5, "Pools that allocate by tokens").
public enum Allocation: String, Sendable, CaseIterable {
    /// Each request pays its own GPU-seconds; the pool's idle capacity is shared by usage cost.
    case gpuSeconds = "gpu_seconds"
    /// Each hour's paid cost is split over the hour's requests by token weight; no idle share.
    case tokens
}

/// What one token of each kind weighs in a `tokens` pool's split. A request weighs
/// `input × (input_tokens − cached_input_tokens) + cachedInput × cached_input_tokens + output × output_tokens`.
///
/// The defaults (1, 0.1, 4): prefill runs a prompt's tokens in parallel, decode produces output
/// one step per token, so an output token holds the GPU several times as long as an input token;
/// the providers that sell the same models by the token price that gap at 4× (OpenAI GPT-4o and
/// GPT-4.1, Google Gemini 1.5 Pro, DeepSeek V3: 4×; Anthropic Claude: 5×), and a cached prefix,
/// whose KV cache is reused rather than recomputed, at 0.1× (Anthropic and DeepSeek cache reads;
/// OpenAI 0.5×). A fleet that measures GPU-seconds on some records can fit its own weights
/// (see the README).
public struct TokenWeights: Sendable, Equatable {
    public var input: Decimal
    public var cachedInput: Decimal
    public var output: Decimal

    public init(input: Decimal, cachedInput: Decimal, output: Decimal) {
        self.input = input; self.cachedInput = cachedInput; self.output = output
    }

    public static let `default` = TokenWeights(input: 1, cachedInput: Decimal(string: "0.1")!, output: 4)

    /// The keys of `token_weights`.
    public static let keys = ["input", "cached_input", "output"]

    /// `input=1,cached_input=0.1,output=4`, as the change log keeps them.
    public var text: String { "input=\(input),cached_input=\(cachedInput),output=\(output)" }

    /// A request's weight.
    public func weight(input inputTokens: Int64, cached: Int64, output outputTokens: Int64) -> Decimal {
        input * Decimal(inputTokens - cached) + cachedInput * Decimal(cached) + output * Decimal(outputTokens)
    }

    /// `token_weights` of a pool definition (a JSON object already decoded): each key one of
    /// `keys`, each value a number from 0 to 10^6 (kept to 9 decimal places), not all 0; a key left
    /// out keeps its default. Each problem
    /// is named with its field (`token_weights.output`).
    public static func parse(_ raw: Any) -> (weights: TokenWeights?, problems: [InvalidInput.Problem]) {
        guard let object = raw as? [String: Any] else {
            return (nil, [.init(field: "token_weights", message: "must be an object such as {\"input\": 1, \"cached_input\": 0.1, \"output\": 4}")])
        }
        var problems: [InvalidInput.Problem] = []
        var w = TokenWeights.default
        for key in object.keys.sorted() {
            let field = "token_weights.\(key)"
            guard keys.contains(key) else {
                problems.append(.init(field: field, message: "unknown key; the keys are input, cached_input, output"))
                continue
            }
            guard let n = object[key] as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue.isFinite, n.doubleValue >= 0,
                  n.doubleValue <= 1_000_000 else {
                problems.append(.init(field: field, message: "must be a number from 0 to 1000000"))
                continue
            }
            // To 9 decimal places: exact for any weight written with up to 9, and never NaN.
            // A weight above 0 stays above 0 (10^-9 at the least).
            var d = CentRounding.decimal(String(format: "%.9f", n.doubleValue)) ?? 0
            if d == 0 && n.doubleValue > 0 { d = Decimal(string: "0.000000001")! }
            switch key {
            case "input": w.input = d
            case "cached_input": w.cachedInput = d
            default: w.output = d
            }
        }
        if problems.isEmpty && w.input == 0 && w.cachedInput == 0 && w.output == 0 {
            problems.append(.init(field: "token_weights", message: "must not all be 0: a request must weigh something"))
        }
        return (problems.isEmpty ? w : nil, problems)
    }
}
