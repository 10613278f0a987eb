import Synchronization

/// What this process's ingest is doing, for the fold's timing (`SummaryFoldService`).
///
/// The fold and ingest compete for the same CPUs: on two cores, a fold every second during a
/// month-wide backfill of 200,000 records held ingest at 0.36-0.50 of `\copy`; with no fold
/// during the load, 0.57-0.64 (docs/performance-log.md, "Ingest"). Reports are exact whether the deltas are
/// folded or not (they read them too), so the fold may wait while batches come in, and runs as
/// soon as ingest pauses. The wait is bounded: by the records stored since the last fold
/// (`maxRecords`: the deltas every report scans), and by the fold service's longest wait.
public final class IngestActivity: Sendable {
    struct State {
        var inFlight = 0
        var lastEnd: ContinuousClock.Instant?
        var recordsSinceFold = 0
    }

    private let state = Mutex(State())
    /// How long after the last answer ingest still counts as busy (the gap between one batch
    /// and a client's next is far shorter).
    public let quiet: Duration
    /// Records stored since the last fold past which the fold waits no longer.
    public let maxRecords: Int

    public init(quiet: Duration = .milliseconds(150), maxRecords: Int = 500_000) {
        self.quiet = quiet
        self.maxRecords = maxRecords
    }

    /// A batch begins.
    public func begin() { state.withLock { $0.inFlight += 1 } }

    /// A batch ended (stored `records`, or failed with 0), at `now`.
    public func end(records: Int, at now: ContinuousClock.Instant = .now) {
        state.withLock {
            $0.inFlight -= 1
            $0.lastEnd = now
            $0.recordsSinceFold += records
        }
    }

    /// True while a batch is in flight or one ended within `quiet` of `now`, and fewer than
    /// `maxRecords` records have been stored since the last fold began.
    public func busy(at now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { s in
            guard s.recordsSinceFold < maxRecords else { return false }
            if s.inFlight > 0 { return true }
            guard let last = s.lastEnd else { return false }
            return now - last < quiet
        }
    }

    /// A fold begins: it takes every delta stored so far.
    public func folding() { state.withLock { $0.recordsSinceFold = 0 } }
}
