import Foundation

/// Which of the GPU series that NVIDIA's dcgm-exporter exports are a pool's GPUs: label name →
/// regular expression, as Prometheus `=~` matchers (`{"Hostname": "gpu-a-.*"}`); stored with the
/// pool (`PUT /v1/pools/{pool}`, `gpu_selector`).
public struct GPUSelector: Sendable, Equatable {
    public private(set) var matchers: [(label: String, regex: String)]

    public static func == (a: GPUSelector, b: GPUSelector) -> Bool {
        a.matchers.map(\.label) == b.matchers.map(\.label) && a.matchers.map(\.regex) == b.matchers.map(\.regex)
    }

    /// At most this many labels; each regular expression at most `maxRegexLength` characters.
    public static let maxMatchers = 16
    public static let maxRegexLength = 512

    /// The selector of a JSON object (label → string), or what is wrong with it, by field.
    public static func parse(_ value: Any) -> (GPUSelector?, [(field: String, message: String)]) {
        guard let object = value as? [String: Any] else {
            return (nil, [("gpu_selector", "must be an object of label names to regular expressions, such as {\"Hostname\": \"gpu-a-.*\"}, or null")])
        }
        var problems: [(field: String, message: String)] = []
        if object.isEmpty { problems.append(("gpu_selector", "needs at least one label (an empty selector would match every GPU)")) }
        if object.count > maxMatchers { problems.append(("gpu_selector", "has \(object.count) labels; at most \(maxMatchers)")) }
        var matchers: [(label: String, regex: String)] = []
        for key in object.keys.sorted() {
            let field = "gpu_selector.\(key)"
            if !isLabelName(key) {
                problems.append((field, "is not a Prometheus label name (letters, digits and _, not starting with a digit or __)"))
                continue
            }
            guard let regex = object[key] as? String, !regex.isEmpty, regex.count <= maxRegexLength else {
                problems.append((field, "must be a regular expression: a string of 1 to \(maxRegexLength) characters"))
                continue
            }
            // PostgreSQL's jsonb cannot hold U+0000 (nor could a PromQL query use it).
            if regex.unicodeScalars.contains("\u{0}") {
                problems.append((field, "must not contain the NUL character (U+0000)"))
                continue
            }
            // RE2 (Prometheus's engine) and Foundation agree on what the common expressions mean;
            // one that Foundation cannot compile is refused here rather than by every query.
            if (try? NSRegularExpression(pattern: regex)) == nil {
                problems.append((field, "is not a valid regular expression"))
                continue
            }
            // What RE2 does not have (Prometheus would refuse every query with it).
            if let construct = Self.unsupportedConstruct(regex) {
                problems.append((field, "uses \(construct), which Prometheus's regular expressions (RE2) do not have"))
                continue
            }
            matchers.append((key, regex))
        }
        return problems.isEmpty ? (GPUSelector(matchers: matchers), []) : (nil, problems)
    }

    init(matchers: [(label: String, regex: String)]) { self.matchers = matchers }

    /// A construct of `regex` that RE2 lacks (lookaround, atomic groups, backreferences), not
    /// counting escaped characters.
    static func unsupportedConstruct(_ regex: String) -> String? {
        let c = Array(regex.unicodeScalars)
        var i = 0
        while i < c.count {
            if c[i] == "\\" {
                if i + 1 < c.count, c[i + 1] >= "1" && c[i + 1] <= "9" { return "the backreference \\\(c[i + 1])" }
                i += 2
                continue
            }
            if c[i] == "(", i + 2 < c.count, c[i + 1] == "?" {
                let rest = String(String.UnicodeScalarView(c[(i + 2)...].prefix(2)))
                for (start, name) in [("=", "lookahead (?="), ("!", "lookahead (?!"), ("<=", "lookbehind (?<="), ("<!", "lookbehind (?<!"), (">", "atomic group (?>")]
                where rest.hasPrefix(start) { return "the \(name)" }
            }
            i += 1
        }
        return nil
    }

    /// The selector stored as JSON text (nil if it is not a valid one).
    public static func parse(json: String) -> GPUSelector? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) else { return nil }
        return parse(object).0
    }

    static func isLabelName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, !s.hasPrefix("__"), s.utf8.count <= 128 else { return false }
        func letter(_ c: Unicode.Scalar) -> Bool { (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" }
        return letter(first) && s.unicodeScalars.allSatisfy { letter($0) || ($0 >= "0" && $0 <= "9") }
    }

    /// The selector as JSON text (stored in `pools.gpu_selector`), keys sorted.
    public var json: String {
        let object = Dictionary(uniqueKeysWithValues: matchers.map { ($0.label, $0.regex) })
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The matchers in PromQL, `{Hostname=~"gpu-a-.*"}`, each value a PromQL string literal.
    public var promQL: String {
        "{" + matchers.map { "\($0.label)=~\(Self.literal($0.regex))" }.joined(separator: ",") + "}"
    }

    /// `s` as a double-quoted PromQL string (backslash, quote and control characters escaped).
    static func literal(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 { out += String(format: "\\x%02x", c.value) } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }
}

/// What a pool's GPUs did over a window, from dcgm-exporter's series (`/v1/stats`' `hardware`).
public struct HardwareFigures: Sendable, Equatable {
    /// Mean busy fraction of the GPUs (`DCGM_FI_PROF_GR_ENGINE_ACTIVE`, else `DCGM_FI_DEV_GPU_UTIL` / 100).
    public var utilization: Double
    /// Which series the busy fraction came from.
    public var utilizationSource: String
    /// The sum over the GPUs of their mean busy fraction: busy GPUs on average.
    public var busyGPUs: Double
    public var memoryUsedRatioMax: Double?
    public var powerWattsMean: Double?
    public var temperatureCMax: Double?
    /// Distinct GPUs seen.
    public var gpus: Int

    public init(utilization: Double, utilizationSource: String, busyGPUs: Double, memoryUsedRatioMax: Double?, powerWattsMean: Double?,
                temperatureCMax: Double?, gpus: Int) {
        self.utilization = utilization
        self.utilizationSource = utilizationSource
        self.busyGPUs = busyGPUs
        self.memoryUsedRatioMax = memoryUsedRatioMax
        self.powerWattsMean = powerWattsMean
        self.temperatureCMax = temperatureCMax
        self.gpus = gpus
    }

    /// The paid cost of the GPU time the hardware spent idle: of `paidCost` for
    /// `provisionedGPUSeconds` over a window of `windowSeconds`, the share the hardware's busy
    /// GPU-seconds (`busyGPUs` × window) leave (0 when the GPUs were busier than paid for).
    /// The busy share is taken as even over the window (rates that change inside it are each
    /// weighted by their own paid GPU-seconds, as `paidCost` is).
    public func idleAllocatedCost(paidCost: Decimal, provisionedGPUSeconds: Decimal, windowSeconds: Double) -> Decimal {
        guard provisionedGPUSeconds > 0 else { return 0 }
        let busy = Decimal(busyGPUs * windowSeconds)
        let idleShare = max(0, min(1, 1 - busy / provisionedGPUSeconds))
        return CentRounding.rounded(paidCost * idleShare, scale: 6, .plain)
    }

    /// GPU-seconds the hardware was busy over `windowSeconds`.
    public func busyGPUSeconds(windowSeconds: Double) -> Double { busyGPUs * windowSeconds }
}
