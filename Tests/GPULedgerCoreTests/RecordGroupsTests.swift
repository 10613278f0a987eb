import Foundation
import GPULedgerCore
import Testing

@Suite struct RecordGroupsTests {
    func record(_ tenant: String, _ model: String, pool: String?, at: String = "2026-10-01T10:00:00Z") -> UsageRecord {
        UsageRecord(requestID: "r", tenant: tenant, model: model, accelerator: "H100", pool: pool,
                    startedAt: Timestamp.parseRFC3339(at)!, gpuSeconds: "1", inputTokens: 1, outputTokens: 1)
    }

    @Test func eachRecordGetsTheGroupOfItsFourNamesInTheOrderGroupsFirstAppear() {
        let records = [
            record("a", "m1", pool: "p1"), record("b", "m1", pool: "p1"), record("a", "m1", pool: "p1"),
            record("a", "m1", pool: nil), record("a", "m2", pool: "p2"), record("b", "m1", pool: "p1"),
        ]
        let groups = RecordGroups(records)
        #expect(groups.count == 4)
        #expect(groups.member == [0, 1, 0, 2, 3, 1])
        #expect(groups.firsts == [0, 1, 3, 4])
        #expect(groups.pools == ["p1", "p2"])
        #expect(groups.poolOf == [0, 0, -1, 1])
        // A pool and no pool are different groups, however the other names match.
        #expect(groups.member[0] != groups.member[3])
    }

    @Test func poolDaysAreEachPoolAndUTCDayOnceInPoolThenDayOrder() {
        let records = [
            record("a", "m", pool: "zeta", at: "2026-10-02T23:59:59Z"),
            record("b", "m", pool: "alpha", at: "2026-10-02T00:00:00Z"),
            record("a", "m", pool: "zeta", at: "2026-10-01T05:00:00Z"),
            record("c", "m", pool: "zeta", at: "2026-10-02T01:00:00Z"), // another group, the same pool-day
            record("a", "m", pool: nil, at: "2026-10-03T01:00:00Z"),
        ]
        let days = RecordGroups(records).poolDays(records).map { "\($0.pool) \($0.day.rfc3339)" }
        #expect(days == ["alpha 2026-10-02T00:00:00Z", "zeta 2026-10-01T00:00:00Z", "zeta 2026-10-02T00:00:00Z"])
        #expect(RecordGroups([record("a", "m", pool: nil)]).poolDays([record("a", "m", pool: nil)]).isEmpty)
    }
}
