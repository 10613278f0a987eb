import Foundation
import GPULedgerStore
import GPULedgerTestSupport
import PostgresNIO
import Testing

@Suite struct MigrationTests {
    func versions(in dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".sql") }.sorted().map { String($0.dropLast(4)) }
    }

    func tempMigrations(_ files: [String: String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpl-mig-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, sql) in files { try sql.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
        return dir
    }

    @Test func appliesEveryMigrationFromEmptyThenNothing() async throws {
        let db = try await TestDatabase.server().createEmptyDatabase()
        let migrator = Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger)
        let expected = try versions(in: TestDatabase.migrationsDirectory)
        #expect(!expected.isEmpty)
        let (first, second, current) = try await db.withDatabase { d in
            (try await migrator.migrate(d), try await migrator.migrate(d), try await migrator.isCurrent(d))
        }
        #expect(first == expected)
        #expect(second.isEmpty)
        #expect(current)
    }

    @Test func twoInstancesStartingTogetherApplyEachMigrationOnce() async throws {
        let db = try await TestDatabase.server().createEmptyDatabase()
        let migrator = Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger)
        async let a = db.withDatabase { d in try await migrator.migrate(d) }
        async let b = db.withDatabase { d in try await migrator.migrate(d) }
        let (x, y) = try await (a, b)
        #expect((x + y).sorted() == (try versions(in: TestDatabase.migrationsDirectory)))
    }

    @Test func aChangedMigrationIsRefused() async throws {
        let dir = try tempMigrations(["0001_a.sql": "CREATE TABLE a (x int);"])
        let db = try await TestDatabase.server().createEmptyDatabase()
        let migrator = Migrator(directory: dir, logger: TestDatabase.logger)
        try await db.withDatabase { d in _ = try await migrator.migrate(d) }
        try "CREATE TABLE a (x bigint);".write(toFile: dir + "/0001_a.sql", atomically: true, encoding: .utf8)
        await #expect { try await db.withDatabase { d in try await migrator.migrate(d) } } throws: { error in
            String(describing: error).contains("0001_a.sql changed after it was applied")
        }
    }

    @Test func aFailingMigrationLeavesNothingHalfApplied() async throws {
        let dir = try tempMigrations([
            "0001_ok.sql": "CREATE TABLE ok (x int);",
            "0002_bad.sql": "CREATE TABLE half (x int);\nINSERT INTO half VALUES (1);\nSELECT no_such_column FROM half;",
        ])
        let db = try await TestDatabase.server().createEmptyDatabase()
        let migrator = Migrator(directory: dir, logger: TestDatabase.logger)
        await #expect { try await db.withDatabase { d in try await migrator.migrate(d) } } throws: { error in
            String(describing: error).contains("0002_bad.sql")
        }
        let tables = try await db.withDatabase { d in
            try await d.withConnection { conn in
                var names: [String] = []
                for try await n in try await conn.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", logger: TestDatabase.logger).decode(String.self) {
                    names.append(n)
                }
                return names
            }
        }
        #expect(tables == ["ok", "schema_migrations"])
    }
}
