import GPULedgerStore
import Testing

/// When the fold waits for ingest (`IngestActivity`, used by `SummaryFoldService`).
@Suite struct IngestActivityTests {
    @Test func busyWhileABatchIsInFlightAndForAMomentAfter() {
        let a = IngestActivity(quiet: .milliseconds(250), maxRecords: 1000)
        let t0 = ContinuousClock.now
        #expect(!a.busy(at: t0)) // nothing has come in
        a.begin()
        #expect(a.busy(at: t0 + .seconds(60))) // in flight, however long
        a.end(records: 10, at: t0 + .seconds(1))
        #expect(a.busy(at: t0 + .milliseconds(1200)))
        #expect(!a.busy(at: t0 + .milliseconds(1250)))
        // Two at once: busy until both ended.
        a.begin(); a.begin()
        a.end(records: 10, at: t0 + .seconds(2))
        #expect(a.busy(at: t0 + .seconds(5)))
        a.end(records: 0, at: t0 + .seconds(5))
        #expect(!a.busy(at: t0 + .seconds(6)))
    }

    @Test func notBusyOnceEnoughRecordsWaitForTheFold() {
        let a = IngestActivity(quiet: .seconds(1), maxRecords: 1000)
        let t0 = ContinuousClock.now
        a.begin()
        a.end(records: 999, at: t0)
        #expect(a.busy(at: t0))
        a.begin()
        a.end(records: 1, at: t0)
        a.begin()
        #expect(!a.busy(at: t0)) // 1,000 stored since the last fold: fold now, in flight or not
        a.folding()
        #expect(a.busy(at: t0))
        a.end(records: 5, at: t0)
    }
}
