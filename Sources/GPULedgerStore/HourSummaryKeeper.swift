import Foundation
import GPULedgerCore
import Logging
import PostgresNIO

/// Keeps the summaries derived from whole hours of records (sql/0017): the latency sketches per
/// hour and model (`LatencySketchStore`) and the label summary per hour (`LabelSummary`). The
/// fold marks each hour whose records changed in `hour_summaries_dirty`; `keep` recomputes those
/// hours from their records, both summaries in one transaction and one snapshot, so that the
/// sums each stores for its hour are those of the records it summarized. Readers use an hour's
/// rows only while those sums equal the hour's in the summaries, so a late or missing hour is
/// read from the records, never counted wrong.
public struct HourSummaryKeeper: Sendable {
    let db: Database
    var logger: Logger { db.logger }

    public init(database: Database) { self.db = database }

    /// Recomputes the dirty hours before `before` (whole hours: the current one changes until it
    /// ends) that no fold has touched for `quiet`, newest first, up to `batch` hours a
    /// transaction, at most `limit` hours; the number recomputed.
    public func keep(before: Timestamp, quiet: Duration = .zero, limit: Int, batch: Int = 24) async throws -> Int {
        let quietSeconds = Double(quiet.components.seconds) + Double(quiet.components.attoseconds) / 1e18
        let logger = self.logger
        var done = 0
        while done < limit {
            let take = min(batch, limit - done)
            let kept = try await db.withTransaction { conn -> Int in
                try await conn.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: logger)
                var hours: [Int64] = []
                for try await h in try await conn.query("""
                    SELECT (extract(epoch FROM hour) * 1000000)::bigint FROM hour_summaries_dirty
                    WHERE hour < \(before.rfc3339)::timestamptz AND marked_at <= now() - \(quietSeconds) * interval '1 second'
                    ORDER BY hour DESC LIMIT \(take) FOR UPDATE SKIP LOCKED
                    """, logger: logger).decode(Int64.self) { hours.append(h) }
                guard !hours.isEmpty else { return 0 }
                hours.sort()
                try await conn.query("""
                    DELETE FROM hour_summaries_dirty WHERE hour IN (SELECT 'epoch'::timestamptz + x * interval '1 microsecond' FROM unnest(\(hours)::bigint[]) x)
                    """, logger: logger)
                let runs = Self.runs(hours)
                try await LatencySketchStore.replace(conn, hours: hours, runs: runs, logger: logger)
                try await LabelSummary.replace(conn, hours: hours, runs: runs, logger: logger)
                return hours.count
            }
            if kept == 0 { break }
            done += kept
        }
        return done
    }

    /// Sorted hour starts (µs) as runs of consecutive hours `[start, end)`.
    static func runs(_ hours: [Int64]) -> [(Timestamp, Timestamp)] {
        var out: [(Timestamp, Timestamp)] = []
        var i = 0
        while i < hours.count {
            var j = i
            while j + 1 < hours.count && hours[j + 1] == hours[j] + Timestamp.hour { j += 1 }
            out.append((Timestamp(microseconds: hours[i]), Timestamp(microseconds: hours[j] + Timestamp.hour)))
            i = j + 1
        }
        return out
    }
}
