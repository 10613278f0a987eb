/// A batch's sums per hour, tenant, model, accelerator and pool: the rows ingest appends to
/// `usage_delta` beside the records (sql/0014), which the fold then moves into the summaries.
///
/// The same sums as `usage_summaries_subtract()` with the sign turned (sql/0010): requests,
/// errors, GPU-seconds, input, output and cached input tokens. GPU-seconds are summed exactly:
/// plain decimals (`12.5`, the usual form) in a 128-bit integer at the largest scale seen, so the
/// text has the scale PostgreSQL's `sum(numeric)` would give; a value it cannot hold that way (an
/// exponent, more than 18 decimals, a sum past 10^20) becomes a delta row of its own record,
/// summed by PostgreSQL like any other row of the same key.
public struct SummaryDelta: Sendable, Equatable {
    public var hour: Timestamp
    public var tenant: String
    public var model: String
    public var accelerator: String
    /// "" for none.
    public var pool: String
    public var requests: Int64 = 0
    public var errors: Int64 = 0
    /// Exact decimal text.
    public var gpuSeconds: String = "0"
    public var inputTokens: Int64 = 0
    public var outputTokens: Int64 = 0
    public var cachedInputTokens: Int64 = 0

    /// The batch's delta rows, in the order their keys first appear.
    public static func rows(_ records: [UsageRecord]) -> [SummaryDelta] {
        rows(records, groups: RecordGroups(records))
    }

    /// The same, with the batch's groups found already (`groups` must be `RecordGroups(records)`).
    public static func rows(_ records: [UsageRecord], groups: RecordGroups) -> [SummaryDelta] {
        struct Key: Hashable { var hour: Int64; var group: Int32 }
        var index: [Key: Int] = [:]
        index.reserveCapacity(min(records.count, 4096))
        var rows: [SummaryDelta] = []
        var sums: [ExactDecimalSum] = []
        // The GPU-seconds text of a row's one value, while it has one: written as sent instead of
        // printing the sum (in a month-wide backfill nearly every row holds one record).
        var only: [String?] = []
        var own: [SummaryDelta] = []
        for (n, r) in records.enumerated() {
            let key = Key(hour: r.startedAt.hourStart.microseconds, group: groups.member[n])
            let i: Int
            if let found = index[key] {
                i = found
            } else {
                i = rows.count
                index[key] = i
                rows.append(SummaryDelta(hour: Timestamp(microseconds: key.hour), tenant: r.tenant, model: r.model,
                                         accelerator: r.accelerator, pool: r.pool ?? ""))
                sums.append(ExactDecimalSum())
                only.append(nil)
            }
            if let g = r.gpuSeconds {
                let first = sums[i].isEmpty
                guard sums[i].add(g) else {
                    var alone = SummaryDelta(hour: rows[i].hour, tenant: r.tenant, model: r.model, accelerator: r.accelerator, pool: r.pool ?? "")
                    alone.count(r)
                    alone.gpuSeconds = g
                    own.append(alone)
                    continue
                }
                only[i] = first ? g : nil
            }
            rows[i].count(r)
        }
        for i in rows.indices { rows[i].gpuSeconds = only[i] ?? sums[i].text }
        return rows.filter { $0.requests > 0 } + own
    }

    mutating func count(_ r: UsageRecord) {
        requests += 1
        if r.status == .error { errors += 1 }
        inputTokens += r.inputTokens
        outputTokens += r.outputTokens
        cachedInputTokens += r.cachedInputTokens ?? 0
    }
}

/// An exact sum of plain decimal texts (`[-]digits[.digits]`) as a 128-bit integer of units of
/// 10^-18, printed at the largest scale added (as PostgreSQL's `sum(numeric)` prints it).
public struct ExactDecimalSum: Sendable, Equatable {
    static let maxScale = 18
    static let powers: [Int128] = (0...18).map { n in (0..<n).reduce(Int128(1)) { p, _ in p * 10 } }
    /// Largest magnitude kept (10^38 / 10^18 units: a sum up to 10^20).
    static let limit = powers[18] * powers[18] * 100
    var units: Int128 = 0
    var scale = 0
    /// Nothing added yet.
    public private(set) var isEmpty = true

    public init() {}

    /// Adds `text`; false (and nothing added) if it is not a plain decimal this sum can hold.
    public mutating func add(_ text: String) -> Bool {
        var negative = false, whole: Int128 = 0, fraction: Int128 = 0, digits = 0, fractionDigits = 0
        var seenPoint = false, any = false
        for (n, b) in text.utf8.enumerated() {
            switch b {
            case UInt8(ascii: "-") where n == 0: negative = true
            case UInt8(ascii: "."): if seenPoint { return false }; seenPoint = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                any = true
                let d = Int128(b - 48)
                if seenPoint {
                    fractionDigits += 1
                    if fractionDigits > Self.maxScale { return false }
                    fraction = fraction * 10 + d
                } else {
                    digits += 1
                    if digits > 20 { return false }
                    whole = whole * 10 + d
                }
            default: return false
            }
        }
        guard any else { return false }
        var value = whole * Self.powers[18] + fraction * Self.powers[Self.maxScale - fractionDigits]
        if negative { value = -value }
        let (sum, overflow) = units.addingReportingOverflow(value)
        guard !overflow, sum.magnitude < Self.limit.magnitude else { return false }
        units = sum
        scale = max(scale, fractionDigits)
        isEmpty = false
        return true
    }

    /// The sum as decimal text with `scale` decimals.
    public var text: String {
        let magnitude = units.magnitude
        let unit = UInt128(Self.powers[18])
        var out = units < 0 ? "-" : ""
        out += String(magnitude / unit)
        if scale > 0 {
            let fraction = String(magnitude % unit)
            let padded = String(repeating: "0", count: 18 - fraction.count) + fraction
            out += "." + padded.prefix(scale)
        }
        return out
    }
}
