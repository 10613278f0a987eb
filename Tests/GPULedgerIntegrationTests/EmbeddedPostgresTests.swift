import Foundation
import GPULedgerStore
import GPULedgerTestSupport
import Logging
import PostgresNIO
import Testing

/// The embedded cluster that `gpuledger serve` uses when DATABASE_URL is unset.
@Suite(.serialized) struct EmbeddedPostgresTests {
    func tempDataDir() -> String {
        "/tmp/gpl-emb-\(UUID().uuidString.prefix(8))"
    }

    func count(_ cluster: EmbeddedPostgres) async throws -> Int {
        try await Database.withClient(cluster.clientConfiguration(), logger: TestDatabase.logger) { db in
            let client = db.client
            try await client.query("CREATE TABLE IF NOT EXISTS t (x int)", logger: TestDatabase.logger)
            try await client.query("INSERT INTO t VALUES (1)", logger: TestDatabase.logger)
            var n = 0
            for try await c in try await client.query("SELECT count(*)::int FROM t", logger: TestDatabase.logger).decode(Int.self) { n = c }
            return n
        }
    }

    @Test func startsStopsRestartsAndAdopts() async throws {
        let dir = tempDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = EmbeddedPostgres(dataDirectory: dir, extraSettings: ["fsync = off"], logger: TestDatabase.logger)
        #expect(try await cluster.start())
        #expect(try await count(cluster) == 1)
        // A second start while it runs (a service restarted after SIGKILL) adopts it.
        let again = EmbeddedPostgres(dataDirectory: dir, logger: TestDatabase.logger)
        #expect(try await again.start() == false)
        try cluster.stop()
        #expect(!FileManager.default.fileExists(atPath: cluster.pgdata + "/postmaster.pid"))
        #expect(try await cluster.start())
        #expect(try await count(cluster) == 2)
        try cluster.stop()
        // A stale postmaster.pid naming a live process that is not PostgreSQL (PID reuse after a crash).
        try "\(getpid())\n\(cluster.pgdata)\n".write(toFile: cluster.pgdata + "/postmaster.pid", atomically: true, encoding: .utf8)
        #expect(try await cluster.start())
        #expect(try await count(cluster) == 3)
        try cluster.stop()
    }

    @Test func recoversAfterEverythingIsKilled() async throws {
        let dir = tempDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = EmbeddedPostgres(dataDirectory: dir, logger: TestDatabase.logger)
        #expect(try await cluster.start())
        #expect(try await count(cluster) == 1)
        let pidText = try String(contentsOfFile: cluster.pgdata + "/postmaster.pid", encoding: .utf8)
        let pid = try #require(Int32(pidText.split(separator: "\n")[0]))
        // SIGKILL the postmaster and its children at once: a crash, with postmaster.pid left behind.
        // (pg_ctl starts the postmaster as a session leader, so they are one process group. Killing
        // the children first let the postmaster see them die and fork new ones before its own
        // SIGKILL; those orphans held the shared memory and the restart was refused, 1 run in 10.)
        #expect(getpgid(pid) == pid)
        kill(-pid, SIGKILL)
        try await waitUntil("the killed cluster's processes to be gone") { kill(-pid, 0) != 0 }
        #expect(FileManager.default.fileExists(atPath: cluster.pgdata + "/postmaster.pid"))
        #expect(try await cluster.start())
        #expect(try await count(cluster) == 2)
        try cluster.stop()
    }

    @Test func missingBinariesNameTheDebianPackage() {
        #expect { try EmbeddedPostgres.findBinaries(path: "/nonexistent", libraryRoot: "/nonexistent") } throws: { error in
            let text = String(describing: error)
            return text.contains("apt-get install -y postgresql") && text.contains("DATABASE_URL")
        }
    }

    @Test func findsTheServerProgramsOnThisMachine() throws {
        let (initdb, pgctl) = try EmbeddedPostgres.findBinaries(path: "")
        #expect(initdb.hasSuffix("/initdb") && pgctl.hasSuffix("/pg_ctl"))
    }
}
