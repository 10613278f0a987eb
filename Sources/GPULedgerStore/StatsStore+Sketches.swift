import Foundation
import GPULedgerCore

/// How `/v1/stats` computes its percentiles.
public enum PercentileChoice: Sendable, Equatable {
    /// Nearest rank over the raw records (PostgreSQL `percentile_disc`).
    case exact
    /// From the hourly latency sketches, within 1% of the exact value, where the query allows.
    case sketch
    /// Sketches for windows holding at least `StatsStore.sketchThreshold` records, else exact.
    case auto
}

/// A stats answer and how its percentiles were computed.
public struct StatsAnswer: Sendable {
    public var rows: [StatsRow]
    public var total: StatsRow
    /// True when the percentiles come from the latency sketches (each within ±1%).
    public var sketched: Bool
    /// Whole hours read from stored sketches, and hours (or parts of hours) computed from records.
    public var storedHours = 0
    public var computedHours = 0
}

extension StatsStore {
    /// The fewest records in a window's whole hours for which `auto` reads the sketches: below it
    /// the exact percentiles cost little (about 5 ms per 10,000 records here).
    public static let sketchThreshold: Int64 = 100_000

    /// Whether sketches (kept per hour and model, fleet-wide) can answer `query`: grouped by
    /// model and time only, filtered by model only.
    public static func sketchesCanAnswer(_ query: CostQuery) -> Bool {
        query.tenant == nil && query.accelerator == nil && query.pool == nil && !query.rawOnly
            && query.groupBy.allSatisfy { [.model, .hour, .day, .month].contains($0) }
    }

    /// The stats of `query`, percentiles as `percentiles` asks (exact where sketches cannot answer).
    public func stats(_ query: CostQuery, percentiles: PercentileChoice) async throws -> StatsAnswer {
        if let window = try await sketchWindow(query, percentiles) { return Self.answer(window, query) }
        let (rows, total) = try await stats(query)
        return StatsAnswer(rows: rows, total: total, sketched: false)
    }

    /// The sketches of `query`'s window when `percentiles` and the query let them answer it
    /// (`answer` then gives its rows, for this or any other grouping of the same window).
    public func sketchWindow(_ query: CostQuery, _ percentiles: PercentileChoice) async throws -> LatencySketchStore.Window? {
        guard percentiles != .exact && Self.sketchesCanAnswer(query) else { return nil }
        return try await LatencySketchStore(database: db).window(from: query.from, to: query.to, model: query.model,
                                                                 minimumRequests: percentiles == .auto ? Self.sketchThreshold : 0)
    }

    /// One latency's `q`-quantile and the requests per hour and model of `window`: what
    /// `answer` gives grouped by model and hour, that one figure only (each hour and model is
    /// one piece, so nothing is merged; a chart of one latency per hour needs no more).
    public static func hourly(_ window: LatencySketchStore.Window, _ latency: (HourSketch) -> LatencySketch,
                              quantile q: Double) -> [Int64: [String: (requests: Int64, value: Double?)]] {
        var out: [Int64: [String: (requests: Int64, value: Double?)]] = [:]
        for (key, piece) in window.pieces where piece.requests > 0 {
            out[key.hour, default: [:]][key.model] = (piece.requests, latency(piece).quantile(q))
        }
        return out
    }

    /// The rows of `query` (over the window's range, grouped by model and time) from `window`.
    public static func answer(_ window: LatencySketchStore.Window, _ query: CostQuery) -> StatsAnswer {
        var answer = rows(window, query)
        (answer.storedHours, answer.computedHours) = (window.storedHours, window.computedHours)
        return answer
    }

    /// The rows of `query` from a window's pieces, as the exact query groups and orders them.
    static func rows(_ window: LatencySketchStore.Window, _ query: CostQuery) -> StatsAnswer {
        struct Key: Hashable { var model: String?; var bucket: Int64? }
        let unit: GroupKey? = query.groupBy.contains(.hour) ? .hour : query.groupBy.contains(.day) ? .day : query.groupBy.contains(.month) ? .month : nil
        let byModel = query.groupBy.contains(.model)
        var groups: [Key: HourSketch] = [:]
        var all = HourSketch()
        for (key, piece) in window.pieces {
            groups[Key(model: byModel ? key.model : nil, bucket: unit.map { bucketStart(key.hour, $0) }), default: HourSketch()].merge(piece)
            all.merge(piece)
        }
        func row(_ s: HourSketch, group: [String?], from: Timestamp, to: Timestamp) -> StatsRow {
            func p(_ k: LatencySketch) -> StatsRow.Percentiles? {
                guard let a = k.quantile(0.5), let b = k.quantile(0.95), let c = k.quantile(0.99) else { return nil }
                return .init(p50: a, p95: b, p99: c)
            }
            return StatsRow(group: group, requests: s.requests, errors: s.errors, ttftMS: p(s.ttft), tpotMS: p(s.tpot), e2eMS: p(s.e2e),
                            queueMS: p(s.queue), outputTokens: s.outputTokens, gpuSeconds: s.gpuSeconds,
                            cacheReportedInputTokens: s.cacheInputTokens, cachedInputTokens: s.cachedInputTokens,
                            windowSeconds: Double(to.microseconds - from.microseconds) / 1e6, provisionedGPUSeconds: nil)
        }
        let total = row(all, group: Array(repeating: nil, count: query.groupBy.count), from: query.from, to: query.to)
        guard !query.groupBy.isEmpty else { return StatsAnswer(rows: [total], total: total, sketched: true) }
        let ordered = groups.filter { $0.value.requests > 0 }.sorted { a, b in
            for key in query.groupBy {
                switch key {
                case .model:
                    let (x, y) = (a.key.model ?? "", b.key.model ?? "")
                    if x != y { return Array(x.utf8).lexicographicallyPrecedes(y.utf8) } // COLLATE "C"
                default:
                    if a.key.bucket != b.key.bucket { return a.key.bucket! < b.key.bucket! }
                }
            }
            return false
        }
        let rows = ordered.map { key, s -> StatsRow in
            var start = query.from, end = query.to
            if let unit, let b = key.bucket {
                start = max(start, Timestamp(microseconds: b))
                end = min(end, Timestamp(microseconds: bucketEnd(b, unit)))
            }
            let group = query.groupBy.map { k -> String? in
                switch k {
                case .model: return key.model
                default: return key.bucket.map { label($0, k) }
                }
            }
            return row(s, group: group, from: start, to: end)
        }
        return StatsAnswer(rows: rows, total: total, sketched: true)
    }

    /// The start (µs) of the hour, day or month that `hour` falls in (UTC).
    static func bucketStart(_ hour: Int64, _ unit: GroupKey) -> Int64 {
        switch unit {
        case .hour: return hour
        case .day: return hour.floorDivided(by: Timestamp.day) * Timestamp.day
        default:
            let c = Timestamp.civil(fromDays: hour.floorDivided(by: Timestamp.day))
            return Timestamp.days(year: c.year, month: c.month, day: 1) * Timestamp.day
        }
    }

    static func bucketEnd(_ start: Int64, _ unit: GroupKey) -> Int64 {
        switch unit {
        case .hour: return start + Timestamp.hour
        case .day: return start + Timestamp.day
        default:
            let c = Timestamp.civil(fromDays: start.floorDivided(by: Timestamp.day))
            let (y, m) = c.month == 12 ? (c.year + 1, Int64(1)) : (c.year, c.month + 1)
            return Timestamp.days(year: y, month: m, day: 1) * Timestamp.day
        }
    }

    /// A bucket as the exact query labels it: `2026-10-01T05:00:00Z`, `2026-10-01`, `2026-10`.
    static func label(_ start: Int64, _ unit: GroupKey) -> String {
        let days = start.floorDivided(by: Timestamp.day)
        let c = Timestamp.civil(fromDays: days)
        let date = String(format: "%04lld-%02lld-%02lld", c.year, c.month, c.day)
        switch unit {
        case .hour: return date + String(format: "T%02lld:00:00Z", (start - days * Timestamp.day) / Timestamp.hour)
        case .day: return date
        default: return String(date.prefix(7))
        }
    }
}
