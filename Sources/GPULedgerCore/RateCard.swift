/// Rate cards (`pricing/*.csv`): effective-dated prices per GPU-hour.
public enum Tier: String, Sendable, CaseIterable, Codable {
    case onDemand = "on_demand", spot, reserved, committed
}

/// One rate: what a GPU-hour of `accelerator` costs at (provider, region, tier) from `effectiveFrom` on.
public struct Rate: Sendable, Equatable {
    public var provider: String
    public var region: String
    public var accelerator: String
    public var tier: Tier
    /// Exact decimal text, as written in the card (`2.49`).
    public var usdPerGPUHour: String
    public var effectiveFrom: Timestamp
    public var source: String
    /// Where it was read: file name and line.
    public var file: String
    public var line: Int

    public struct Key: Hashable, Sendable {
        public var provider: String, region: String, accelerator: String, tier: Tier
        public init(provider: String, region: String, accelerator: String, tier: Tier) {
            self.provider = provider
            self.region = region
            self.accelerator = accelerator
            self.tier = tier
        }
    }
    public var key: Key { Key(provider: provider, region: region, accelerator: accelerator, tier: tier) }
}

/// Which rate prices usage on no registered pool, per accelerator (`pricing/defaults.csv`).
public struct DefaultRate: Sendable, Equatable {
    public var accelerator: String
    public var key: Rate.Key
    public init(accelerator: String, key: Rate.Key) {
        self.accelerator = accelerator
        self.key = key
    }
}

/// A problem in a rate card, located as `file:line:column` (column = the CSV field's position).
public struct RateCardError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Reads and checks a folder's rate cards. Pure: the caller reads the files.
public enum RateCards {
    public static let columns = ["provider", "region", "accelerator", "tier", "usd_per_gpu_hour", "effective_from", "source"]
    public static let defaultsColumns = ["accelerator", "provider", "region", "tier"]
    public static let defaultsFile = "defaults.csv"

    public struct Loaded: Sendable {
        public var rates: [Rate]
        public var defaults: [DefaultRate]
        /// Files refused whole, with every problem found in them.
        public var errors: [RateCardError]
        public var refusedFiles: Set<String> { Set(errors.map(\.file)) }
        public var accelerators: Set<String> { Set(rates.map(\.accelerator)) }
    }

    /// Checks every file (name → text). A file with any bad row contributes nothing; duplicate
    /// keys across files refuse the later file (in name order).
    public static func load(_ files: [(name: String, text: String)]) -> Loaded {
        var rates: [Rate] = []
        var errors: [RateCardError] = []
        var seen: [String: Rate] = [:]  // key + effective_from -> first rate
        var defaultsText: (String, String)?
        for (name, text) in files.sorted(by: { $0.name < $1.name }) {
            if name.hasSuffix(defaultsFile) { defaultsText = (name, text); continue }
            var fileErrors: [RateCardError] = []
            let parsed = parseCard(name: name, text: text, errors: &fileErrors)
            var fileSeen: [String: Rate] = [:]
            for rate in parsed {
                let id = "\(rate.provider)|\(rate.region)|\(rate.accelerator)|\(rate.tier.rawValue)|\(rate.effectiveFrom.microseconds)"
                if let first = seen[id] ?? fileSeen[id] {
                    fileErrors.append(.init(file: name, line: rate.line, column: 1,
                        message: "duplicate rate: \(rate.provider) \(rate.region) \(rate.accelerator) \(rate.tier.rawValue) from \(rate.effectiveFrom.rfc3339) is already given at \(first.file):\(first.line)"))
                } else {
                    fileSeen[id] = rate
                }
            }
            if fileErrors.isEmpty {
                rates += parsed
                seen.merge(fileSeen) { a, _ in a }
            } else {
                errors += fileErrors.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
            }
        }
        var defaults: [DefaultRate] = []
        if let (name, text) = defaultsText {
            var fileErrors: [RateCardError] = []
            let keys = Set(rates.map(\.key))
            defaults = parseDefaults(name: name, text: text, known: keys, errors: &fileErrors)
            if !fileErrors.isEmpty {
                errors += fileErrors
                defaults = []
            }
        }
        return Loaded(rates: rates, defaults: defaults, errors: errors)
    }

    static func parseCard(name: String, text: String, errors: inout [RateCardError]) -> [Rate] {
        let rows = CSVRows.parse(text)
        guard let header = rows.first else {
            errors.append(.init(file: name, line: 1, column: 1, message: "empty file; the header is \(columns.joined(separator: ","))"))
            return []
        }
        guard let index = headerIndex(header, expected: columns, file: name, errors: &errors) else { return [] }
        var out: [Rate] = []
        for row in rows.dropFirst() where !(row.fields.count == 1 && row.fields[0].isEmpty) {
            func field(_ c: String) -> (String, Int) {
                let i = index[c]!
                return (i < row.fields.count ? row.fields[i] : "", i + 1)
            }
            func fail(_ c: String, _ message: String) {
                errors.append(.init(file: name, line: row.line, column: field(c).1, message: message))
            }
            if row.fields.count != header.fields.count {
                errors.append(.init(file: name, line: row.line, column: min(row.fields.count, header.fields.count) + 1,
                                    message: "expected \(header.fields.count) fields, got \(row.fields.count)"))
                continue
            }
            var ok = true
            for c in ["provider", "region", "accelerator"] {
                let (v, _) = field(c)
                if v.isEmpty || v.count > 64 || v != v.trimmingWhitespace() {
                    fail(c, "\(c) must be 1 to 64 characters without surrounding spaces (got \(JSONText.quoted(v)))")
                    ok = false
                }
            }
            let tier = Tier(rawValue: field("tier").0)
            if tier == nil {
                fail("tier", "unknown tier \(JSONText.quoted(field("tier").0)); use on_demand, spot, reserved or committed")
                ok = false
            }
            let price = field("usd_per_gpu_hour").0
            if !isPlainDecimal(price) {
                fail("usd_per_gpu_hour", price.hasPrefix("-") ? "usd_per_gpu_hour must not be negative (got \(price))"
                                                             : "usd_per_gpu_hour must be a plain decimal such as 2.49 (got \(JSONText.quoted(price)))")
                ok = false
            }
            let effective = parseEffectiveFrom(field("effective_from").0)
            if effective == nil {
                fail("effective_from", "effective_from must be a date (2025-03-02) or an hour in UTC (2025-03-02T14:00:00Z); got \(JSONText.quoted(field("effective_from").0))")
                ok = false
            }
            guard ok, let tier, let effective else { continue }
            out.append(Rate(provider: field("provider").0, region: field("region").0, accelerator: field("accelerator").0,
                            tier: tier, usdPerGPUHour: price, effectiveFrom: effective, source: field("source").0,
                            file: name, line: row.line))
        }
        return out
    }

    static func parseDefaults(name: String, text: String, known: Set<Rate.Key>, errors: inout [RateCardError]) -> [DefaultRate] {
        let rows = CSVRows.parse(text)
        guard let header = rows.first, let index = headerIndex(header, expected: defaultsColumns, file: name, errors: &errors) else {
            if rows.isEmpty { errors.append(.init(file: name, line: 1, column: 1, message: "empty file")) }
            return []
        }
        var out: [DefaultRate] = []
        var seen: [String: Int] = [:]
        for row in rows.dropFirst() where !(row.fields.count == 1 && row.fields[0].isEmpty) {
            guard row.fields.count == header.fields.count else {
                errors.append(.init(file: name, line: row.line, column: min(row.fields.count, header.fields.count) + 1,
                                    message: "expected \(header.fields.count) fields, got \(row.fields.count)"))
                continue
            }
            let f = { (c: String) in row.fields[index[c]!] }
            guard let tier = Tier(rawValue: f("tier")) else {
                errors.append(.init(file: name, line: row.line, column: index["tier"]! + 1, message: "unknown tier \(JSONText.quoted(f("tier")))"))
                continue
            }
            let key = Rate.Key(provider: f("provider"), region: f("region"), accelerator: f("accelerator"), tier: tier)
            if let first = seen[key.accelerator] {
                errors.append(.init(file: name, line: row.line, column: index["accelerator"]! + 1,
                                    message: "\(key.accelerator) already has a default at line \(first)"))
                continue
            }
            guard known.contains(key) else {
                errors.append(.init(file: name, line: row.line, column: 1,
                                    message: "no rate card has \(key.provider) \(key.region) \(key.accelerator) \(tier.rawValue)"))
                continue
            }
            seen[key.accelerator] = row.line
            out.append(DefaultRate(accelerator: key.accelerator, key: key))
        }
        return out
    }

    static func headerIndex(_ header: CSVRows.Row, expected: [String], file: String, errors: inout [RateCardError]) -> [String: Int]? {
        var index: [String: Int] = [:]
        var ok = true
        for (i, name) in header.fields.enumerated() {
            let n = name.trimmingWhitespace()
            if !expected.contains(n) {
                errors.append(.init(file: file, line: header.line, column: i + 1, message: "unknown column \(JSONText.quoted(n)); the columns are \(expected.joined(separator: ","))"))
                ok = false
            } else if index[n] != nil {
                errors.append(.init(file: file, line: header.line, column: i + 1, message: "column \(n) appears twice"))
                ok = false
            } else {
                index[n] = i
            }
        }
        for name in expected where index[name] == nil {
            errors.append(.init(file: file, line: header.line, column: header.fields.count + 1, message: "missing column \(name)"))
            ok = false
        }
        return ok ? index : nil
    }

    /// `123`, `2.49`: digits, optionally a point and digits. No sign, exponent or spaces.
    public static func isPlainDecimal(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty else { return false }
        var i = 0
        var digits = 0
        while i < u.count, u[i] >= 48, u[i] <= 57 { i += 1; digits += 1 }
        guard digits > 0 else { return false }
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            var frac = 0
            while i < u.count, u[i] >= 48, u[i] <= 57 { i += 1; frac += 1 }
            guard frac > 0 else { return false }
        }
        return i == u.count
    }

    /// A date (midnight UTC) or an RFC 3339 time on the hour in UTC.
    public static func parseEffectiveFrom(_ s: String) -> Timestamp? {
        guard let t = Timestamp.parseDateOrTime(s) else { return nil }
        if s.utf8.count == 10 { return t }
        guard t.microseconds % Timestamp.hour == 0, s.hasSuffix("Z") || s.hasSuffix("z") else { return nil }
        return t
    }
}

/// RFC 4180 CSV rows with the line each starts on (quoted fields may span lines).
public enum CSVRows {
    public struct Row: Sendable { public var line: Int; public var fields: [String] }

    public static func parse(_ text: String) -> [Row] {
        var rows: [Row] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var line = 1
        var rowLine = 1
        var inQuotes = false
        var atStart = true
        let b = Array(text.utf8)
        var i = 0
        if b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { i = 3 } // BOM
        func endField() { fields.append(String(decoding: field, as: UTF8.self)); field.removeAll() }
        while i < b.count {
            let c = b[i]
            if inQuotes {
                if c == UInt8(ascii: "\"") {
                    if i + 1 < b.count, b[i + 1] == UInt8(ascii: "\"") { field.append(c); i += 2; continue }
                    inQuotes = false
                } else {
                    if c == 0x0A { line += 1 }
                    field.append(c)
                }
                i += 1
                continue
            }
            switch c {
            case UInt8(ascii: "\""):
                inQuotes = true
                atStart = false
            case UInt8(ascii: ","):
                endField()
                atStart = false
            case 0x0D:
                break
            case 0x0A:
                endField()
                rows.append(Row(line: rowLine, fields: fields))
                fields = []
                line += 1
                rowLine = line
                atStart = true
            default:
                field.append(c)
                atStart = false
            }
            i += 1
        }
        if !atStart || !field.isEmpty || !fields.isEmpty {
            endField()
            rows.append(Row(line: rowLine, fields: fields))
        }
        return rows
    }
}
