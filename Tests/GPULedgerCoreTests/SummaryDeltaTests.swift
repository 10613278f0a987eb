import Foundation
import GPULedgerCore
import Testing

@Suite struct SummaryDeltaTests {
    func record(_ id: Int, at: String, gpu: String?, tenant: String = "acme", pool: String? = "p1", status: UsageRecord.Status = .ok,
                cached: Int64? = nil) -> UsageRecord {
        UsageRecord(requestID: "r\(id)", tenant: tenant, model: "m", accelerator: "H100", pool: pool,
                    startedAt: Timestamp.parseRFC3339(at)!, gpuSeconds: gpu, inputTokens: 100, outputTokens: 10 + Int64(id),
                    cachedInputTokens: cached, status: status)
    }

    @Test func sumsPerHourAndKeyExactlyAtTheLargestScale() {
        let rows = SummaryDelta.rows([
            record(1, at: "2026-10-01T10:59:59.999Z", gpu: "1.5"),
            record(2, at: "2026-10-01T10:00:00Z", gpu: "0.25", status: .error, cached: 40),
            record(3, at: "2026-10-01T11:00:00Z", gpu: "2"),
            record(4, at: "2026-10-01T10:30:00Z", gpu: "0.1", tenant: "beta", pool: nil),
            record(5, at: "2026-10-01T10:31:00Z", gpu: nil),
        ])
        #expect(rows.count == 3)
        let first = rows[0]
        #expect(first.hour == Timestamp.parseRFC3339("2026-10-01T10:00:00Z")!)
        #expect(first.requests == 3 && first.errors == 1)
        #expect(first.gpuSeconds == "1.75") // 1.5 + 0.25 + nothing, at scale 2 as sum(numeric) prints it
        #expect(first.inputTokens == 300 && first.outputTokens == 11 + 12 + 15 && first.cachedInputTokens == 40)
        #expect(rows[1].hour == Timestamp.parseRFC3339("2026-10-01T11:00:00Z")! && rows[1].gpuSeconds == "2")
        #expect(rows[2].tenant == "beta" && rows[2].pool == "" && rows[2].gpuSeconds == "0.1")
    }

    @Test func aValueTheSumCannotHoldIsARowOfItsOwn() {
        let rows = SummaryDelta.rows([
            record(1, at: "2026-10-01T10:00:00Z", gpu: "1e3"),
            record(2, at: "2026-10-01T10:10:00Z", gpu: "0.1234567890123456789"), // 19 decimals
            record(3, at: "2026-10-01T10:20:00Z", gpu: "3.000"),
        ])
        #expect(rows.map(\.gpuSeconds) == ["3.000", "1e3", "0.1234567890123456789"])
        #expect(rows.map(\.requests) == [1, 1, 1])
        #expect(rows.allSatisfy { $0.hour == Timestamp.parseRFC3339("2026-10-01T10:00:00Z")! })
    }

    @Test func theDecimalSumIsExactWhereADoubleIsNot() {
        var sum = ExactDecimalSum()
        var added = 0
        for _ in 0..<10 where sum.add("0.1") { added += 1 }
        #expect(added == 10)
        #expect(sum.text == "1.0")
        let big = sum.add("123456789012345678.000000000000000001")
        #expect(big)
        #expect(sum.text == "123456789012345679.000000000000000001")
        // More than 20 whole digits, not a plain decimal: refused, and the sum unchanged.
        for bad in ["99999999999999999999999", "1.2.3", "", "-", "1e5"] {
            let taken = sum.add(bad)
            #expect(!taken, "\(bad)")
        }
        #expect(sum.text == "123456789012345679.000000000000000001")
    }
}
