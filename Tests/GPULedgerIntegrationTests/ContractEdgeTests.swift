import Foundation
import GPULedgerCore
import GPULedgerTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

/// What the OpenAPI description promises at its edges (what schemathesis's positive and negative
/// phases probe), each as a client sees it.
@Suite struct ContractEdgeTests {
    @Test func queryTimesAreDatesOrTimesFrom1970To8999() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            for bad in ["", "1969-12-31", "0001-01-01T00:00:00Z", "9000-01-01", "2026-02-30"] {
                let a = try await client.get("/v1/rates?at=\(bad)", key: t.adminKey)
                #expect(a.status == .badRequest && a.errorCode == "bad_query", "at=\(bad): \(a.body)")
            }
            // The extremes of the range answer (a year's window after 8999-12-31 is still a time).
            for good in ["1970-01-01", "8999-12-31T23:59:59-23:59"] {
                #expect(try await client.get("/v1/rates?at=\(good)", key: t.adminKey).status == .ok, "at=\(good)")
                _ = try await client.put("/v1/budgets/edge", key: t.financeKey, body: #"{"period":"yearly","amount_usd":"10"}"#)
                let s = try await client.get("/v1/budgets/edge/status?at=\(good)", key: t.financeKey)
                #expect(s.status == .ok, "status at \(good): \(s.body)")
            }
            // `at` is checked even where it is not used (status=false).
            #expect(try await client.get("/v1/budgets?at=", key: t.adminKey).status == .badRequest)
        }
    }

    @Test func aGroupByKeyThatIsNoKeyIsABadQueryThatNamesIt() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            for path in ["/v1/costs", "/v1/stats"] {
                let a = try await client.get("\(path)?group_by=tenant,color", key: t.adminKey)
                #expect(a.status == .badRequest && a.errorCode == "bad_query" && a.body.contains("unknown key \\\"color\\\""), "\(path): \(a.body)")
            }
        }
    }

    @Test func aFromAfterNowWithoutToIsAnEmptyRangeAndATypoTenantIsRefused() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            try await client.ingest([record("r1", ["started_at": "\"\(TestClock.recent.rfc3339)\""])], key: t.adminKey)
            let future = TestClock.now.adding(days: 400).rfc3339
            let empty = try await client.get("/v1/costs?group_by=tenant&from=\(future)", key: t.adminKey)
            #expect(empty.status == .ok, "\(empty.body)")
            #expect((empty.json["rows"] as? [Any])?.isEmpty == true)
            // Still a 400 when both are given the wrong way round.
            #expect(try await client.get("/v1/costs?from=2026-11-02&to=2026-11-01", key: t.adminKey).status == .badRequest)
            let typo = try await client.get("/v1/costs?tenant=Acme", key: t.adminKey)
            #expect(typo.status == .badRequest && (typo.error["message"] as? String ?? "").contains("tenant=Acme"), "\(typo.body)")
        }
    }

    @Test func aGroupByKeyGivenTwiceGroupsOnce() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            try await client.ingest([record("r1"), record("r2", tenant: "globex")], key: t.adminKey)
            let once = try await client.get("/v1/costs?group_by=tenant&from=2026-11-01&to=2026-12-01", key: t.adminKey)
            let twice = try await client.get("/v1/costs?group_by=tenant,tenant&from=2026-11-01&to=2026-12-01", key: t.adminKey)
            #expect(twice.status == .ok)
            #expect(once.body == twice.body)
        }
    }

    @Test func tokenCountsAboveATrillionAreRefusedBeforeTheySum() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let big = try await client.post("/v1/usage", key: t.adminKey,
                                            body: "[\(record("r1", ["input_tokens": "1000000000001"]))]")
            #expect(big.status == .unprocessableContent)
            #expect(big.details.first?["field"] as? String == "input_tokens")
            try await client.ingest([record("r2", ["input_tokens": "1000000000000", "output_tokens": "1000000000000"])], key: t.adminKey)
            #expect(try await storedCount(t) == 1)
        }
    }

    @Test func aPoolNameInThePathIsPercentDecodedAndThresholdsStartAtOnePercent() async throws {
        let t = try await TestApp.make()
        try await t.application().test(.router) { client in
            let put = try await client.put("/v1/pools/gpu%20east%2F1", key: t.adminKey,
                                           body: #"{"accelerator":"H100","provider":"aws","region":"us-east-1","tier":"on_demand"}"#)
            #expect(put.status == .created, "\(put.body)")
            #expect(put.json["pool"] as? String == "gpu east/1")
            #expect(try await client.get("/v1/pools/gpu%20east%2F1", key: t.adminKey).json["pool"] as? String == "gpu east/1")
            let tiny = try await client.put("/v1/budgets/b", key: t.financeKey,
                                            body: #"{"period":"monthly","amount_usd":"10","thresholds":[0.005]}"#)
            #expect(tiny.status == .unprocessableContent && tiny.details.first?["field"] as? String == "thresholds")
        }
    }
}
