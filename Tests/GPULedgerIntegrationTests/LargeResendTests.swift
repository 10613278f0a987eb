import Foundation
import GPULedgerTestSupport
import Testing

@Suite struct LargeResendTests {
    /// A resend of a full-size batch: the direct COPY meets the unique key part-way through the
    /// stream, rolls back, and the batch goes through staging. (PostgresNIO 1.33 loses the write
    /// that waits on socket backpressure when the error arrives, and the request then hung
    /// forever in release builds; the store now sends a batch's COPY data in one write. The
    /// ingest benchmark's resend phase is where that hang showed.)
    @Test func aTenThousandRecordBatchSentTwice() async throws {
        let t = try await TestApp.make()
        let body = SampleRecords.ndjson(0..<10_000)
        try await t.application().test(.router) { client in
            let first = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: body)
            #expect(first.json["accepted"] as? Int == 10_000)
            let second = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: body)
            #expect(second.json["duplicates"] as? Int == 10_000)
            // The tail of the batch new, the head already stored.
            let mixed = try await client.post("/v1/usage", key: t.ingestKey, contentType: "application/x-ndjson", body: SampleRecords.ndjson(5_000..<15_000))
            #expect(mixed.json["accepted"] as? Int == 5_000)
            #expect(mixed.json["duplicates"] as? Int == 5_000)
        }
        #expect(try await storedCount(t) == 15_000)
    }
}
