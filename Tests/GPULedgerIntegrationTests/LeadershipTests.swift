import Foundation
import GPULedgerAPI
import GPULedgerStore
import GPULedgerTestSupport
import Logging
import HummingbirdTesting
import Testing

/// Several replicas on one database: the background lease (sql/0015) has one holder at a time,
/// passes to another replica when its holder stops renewing (dies) or gives it up (stops), and
/// the jobs' runs are counted per replica.
@Suite struct LeadershipTests {
    func replicas(_ db: Database, ttl: Duration) -> [(Leadership, LeaderElectionService)] {
        ["replica-a", "replica-b", "replica-c"].map { name in
            let l = Leadership(holder: name, ttl: ttl)
            return (l, LeaderElectionService(database: db, leadership: l, metrics: AppMetrics(), logger: TestDatabase.logger))
        }
    }

    @Test func oneHolderAtATimeAndATakeoverWhenItDies() async throws {
        let t = try await TestApp.make()
        try await t.database.withDatabase { db in
            // A long lease while one holder is checked to exclude the others: on a loaded CI
            // machine seconds can pass between two attempts (with a 6 s lease, one CI run saw
            // another replica take a lease its holder had just renewed, 6 s later).
            let r = replicas(db, ttl: .seconds(60))
            // All three ask together: exactly one gets it.
            let got = await withTaskGroup(of: Bool.self) { group in
                for (_, election) in r { group.addTask { await election.attempt() } }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(got.filter { $0 }.count == 1)
            let leader = try #require(r.first { $0.0.isLeader })
            let others = r.filter { $0.0.holder != leader.0.holder }
            let leases = LeaseStore(database: db)
            #expect(try await leases.lease(Leadership.leaseName)?.holder == leader.0.holder)
            // Renewing keeps it; the others keep being refused.
            #expect(await leader.1.attempt())
            for (l, e) in others { #expect(!(await e.attempt()) && !l.isLeader) }
            let term = try #require(try await leases.lease(Leadership.leaseName)?.term)

            // The holder's last renewal is a short one (2 s), then it dies (stops renewing):
            // another takes over once the lease lapses, not before, and the term moves on.
            let renewed = ContinuousClock.now
            #expect(try await leases.acquireOrRenew(Leadership.leaseName, holder: leader.0.holder, ttl: .seconds(2)).holder == leader.0.holder)
            let died = ContinuousClock.now
            var successor: Leadership?
            while successor == nil, ContinuousClock.now - died < .seconds(16) {
                for (l, e) in others where await e.attempt() { successor = l; break }
                if successor == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let took = ContinuousClock.now - died
            let next = try #require(successor)
            #expect(ContinuousClock.now - renewed >= .milliseconds(1900) && took < .seconds(14), "took over after \(took)")
            #expect(try await leases.lease(Leadership.leaseName)?.term == term + 1)
            // The old holder, back, is refused and knows it (the successor's lease is a long one).
            #expect(!(await leader.1.attempt()) && !leader.0.isLeader)

            // A holder that stops gives the lease up: the next attempt elsewhere gets it at once.
            try await leases.release(Leadership.leaseName, holder: next.holder)
            #expect(await leader.1.attempt())
        }
    }

    /// A replica that stops gives the lease up even when it does not know it holds it: an
    /// attempt cut off by the shutdown can have taken the lease in the database after all.
    @Test func aStoppingReplicaGivesUpALeaseItDidNotKnowItHeld() async throws {
        let t = try await TestApp.make()
        try await t.database.withDatabase { db in
            let leases = LeaseStore(database: db)
            let r = replicas(db, ttl: .seconds(60))
            let (a, electionA) = r[0], (b, electionB) = r[1], (c, electionC) = r[2]
            #expect(await electionB.attempt())
            #expect(!(await electionA.attempt()) && !a.isLeader)
            // The lease passes to replica-a in the database without replica-a learning so.
            try await leases.release(Leadership.leaseName, holder: b.holder)
            #expect(try await leases.acquireOrRenew(Leadership.leaseName, holder: a.holder, ttl: .seconds(60)).holder == a.holder)
            #expect(!a.isLeader)

            await electionA.stop()
            let lease = try #require(try await leases.lease(Leadership.leaseName))
            #expect(lease.holder == a.holder && lease.expiresIn <= 0, "\(lease)")
            // Another replica takes it at once, and a stop elsewhere leaves it alone.
            #expect(await electionC.attempt() && c.isLeader)
            await electionB.stop()
            #expect(try await leases.lease(Leadership.leaseName)?.holder == c.holder)
            #expect(await electionC.attempt())
        }
    }

    @Test func eachJobsRunsAreCountedPerReplica() async throws {
        let t = try await TestApp.make()
        try await t.database.withDatabase { db in
            let leases = LeaseStore(database: db)
            for _ in 0..<3 { try await leases.countRun("summary_fold", holder: "replica-a") }
            try await leases.countRun("summary_fold", holder: "replica-b")
            try await leases.countRun("fleet_gauges", holder: "replica-a")
            let runs = try await leases.runs()
            #expect(runs.map { "\($0.job) \($0.holder) \($0.runs)" } == ["fleet_gauges replica-a 1", "summary_fold replica-a 3", "summary_fold replica-b 1"])
            #expect(runs.allSatisfy { $0.secondsSinceLast >= 0 && $0.secondsSinceLast < 60 })
        }
    }

    /// `gpuledger_summary_folded_timestamp_seconds`, which `GPULedgerSummaryFoldStalled` reads:
    /// a replica that does not run the fold neither folds nor has the gauge; once it holds the
    /// lease it folds, counts what it folded and says when.
    @Test func theFoldRunnerSaysWhenItLastFolded() async throws {
        let t = try await TestApp.make { $0.instanceName = "the-app" }
        let posted = try await t.application().test(.router) { client in
            try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: SampleRecords.ndjson(0..<20)).status
        }
        #expect(posted == .ok)
        try await t.database.withDatabase { db in
            let metrics = AppMetrics()
            let leadership = Leadership(holder: "replica-a", ttl: .seconds(60))
            let election = LeaderElectionService(database: db, leadership: leadership, metrics: metrics, logger: TestDatabase.logger)
            let fold = SummaryFoldService(database: db, leadership: leadership, metrics: metrics, interval: .seconds(1), logger: TestDatabase.logger)
            func sample(_ name: String) -> Double? {
                String(decoding: metrics.render(), as: UTF8.self).split(separator: "\n")
                    .first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) }
            }
            func deltas() async throws -> Int {
                try await db.withConnection { conn in
                    var n = 0
                    for try await c in try await conn.query("SELECT count(*)::int FROM usage_delta", logger: TestDatabase.logger).decode(Int.self) { n = c }
                    return n
                }
            }
            let waiting = try await deltas()
            #expect(waiting > 0)
            // The application ran its own replica, whose first attempt can be cut off by the test
            // framework's shutdown. It gives the lease up on stopping, but a cut-off attempt's
            // statement can still take the lease after that release (it then lapses in 5 s), and
            // this replica could not take it meanwhile: released here, after the app has stopped.
            try await LeaseStore(database: db).release(Leadership.leaseName, holder: "the-app")

            try await fold.foldOnce()
            #expect(try await deltas() == waiting)
            #expect(sample("gpuledger_summary_folded_timestamp_seconds") == nil && sample("gpuledger_summary_folded_rows_total") == nil)

            #expect(await election.attempt())
            let before = Date().timeIntervalSince1970
            try await fold.foldOnce()
            let after = Date().timeIntervalSince1970
            #expect(try await deltas() == 0)
            #expect(sample("gpuledger_summary_folded_rows_total") == Double(waiting))
            let at = try #require(sample("gpuledger_summary_folded_timestamp_seconds"))
            #expect(at >= before.rounded(.down) && at <= after.rounded(.up), "\(before) <= \(at) <= \(after)")
            // A later fold, with nothing to fold, says so again: the gauge moves on.
            try await fold.foldOnce()
            #expect(try #require(sample("gpuledger_summary_folded_timestamp_seconds")) > at)
            #expect(sample("gpuledger_summary_folded_rows_total") == Double(waiting))
        }
    }
}
