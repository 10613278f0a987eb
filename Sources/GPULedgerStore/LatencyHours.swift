import Foundation
import GPULedgerCore
import Synchronization

/// Exact latency percentiles per hour and model (as `/v1/stats?group_by=model,hour` gives them),
/// kept per hour once computed: an hour's figures are recomputed from the raw records only when
/// its request counts in the summaries (per model) differ from those they were computed with,
/// which is whenever a record of that hour was added or deleted. So the console's latency chart
/// reads the records of the current hour (and of hours with late records), not of the whole day.
public final class LatencyHours: Sendable {
    struct Entry {
        var counts: [String: Int64]
        var rows: [String: StatsRow]
    }
    private let entries = Mutex<[String: Entry]>([:])
    /// Bounded: emptied when it reaches this many hours (a week of hours for 60 scopes).
    let capacity = 10_000

    public init() {}

    static let hour = Timestamp.hour

    /// Each whole hour in `[from, to)` (starts in microseconds) → model → its figures.
    public func series(_ stats: StatsStore, from: Timestamp, to: Timestamp, tenant: String?) async throws -> [Int64: [String: StatsRow]] {
        let counts = try await stats.hourlyRequestCounts(from: from, to: to, tenant: tenant)
        func key(_ hour: Int64) -> String { "\(tenant ?? "")|\(hour)" }
        var out: [Int64: [String: StatsRow]] = [:]
        var stale: [Int64] = []
        let cached = entries.withLock { e in
            Dictionary(uniqueKeysWithValues: stride(from: from.microseconds, to: to.microseconds, by: Int(Self.hour)).compactMap { h in e[key(h)].map { (h, $0) } })
        }
        for h in stride(from: from.microseconds, to: to.microseconds, by: Int(Self.hour)) {
            let c = counts[h] ?? [:]
            if c.isEmpty { out[h] = [:] } else if let e = cached[h], e.counts == c { out[h] = e.rows } else { stale.append(h) }
        }
        // The stale hours, a run of consecutive hours per query.
        var fresh: [String: Entry] = [:]
        var i = 0
        while i < stale.count {
            var j = i
            while j + 1 < stale.count && stale[j + 1] == stale[j] + Self.hour { j += 1 }
            let result = try await stats.stats(CostQuery(from: Timestamp(microseconds: stale[i]), to: Timestamp(microseconds: stale[j] + Self.hour),
                                                         groupBy: [.model, .hour], tenant: tenant))
            var byHour: [Int64: [String: StatsRow]] = [:]
            for row in result.rows {
                guard row.group.count == 2, let model = row.group[0], let label = row.group[1], let t = Timestamp.parseRFC3339(label) else { continue }
                byHour[t.microseconds, default: [:]][model] = row
            }
            for h in stale[i...j] {
                out[h] = byHour[h] ?? [:]
                fresh[key(h)] = Entry(counts: counts[h] ?? [:], rows: byHour[h] ?? [:])
            }
            i = j + 1
        }
        if !fresh.isEmpty {
            let capacity = self.capacity
            entries.withLock { e in
                if e.count + fresh.count > capacity { e.removeAll() }
                e.merge(fresh) { _, new in new }
            }
        }
        return out
    }
}
