import Foundation
import GPULedgerCore

/// Realistic usage records for tests and benchmarks.
public enum SampleRecords {
    public static let tenants = (0..<50).map { "tenant-\($0)" }
    public static let models = ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mistral-7b", "mixtral-8x7b",
                                "qwen2.5-72b", "deepseek-v3", "gemma-2-27b", "phi-3-mini", "command-r"]
    public static let accelerators = ["H100", "H200", "A100-80GB", "L40S"]

    /// One record's JSON (one line of NDJSON), deterministic in `i`; started at a random moment
    /// of the span unless `at` is given.
    public static func json(_ i: Int, tenant: String? = nil, requestID: String? = nil, start: Timestamp = Timestamp(secondsSince1970: 1_790_812_800),
                            spanSeconds: Int64 = 30 * 86_400, at fixed: Timestamp? = nil) -> String {
        var rng = SplitMix(seed: UInt64(i))
        let tenant = tenant ?? tenants[Int(rng.next() % UInt64(tenants.count))]
        let model = models[Int(rng.next() % UInt64(models.count))]
        let accel = accelerators[Int(rng.next() % UInt64(accelerators.count))]
        let at = fixed ?? start.adding(seconds: Int64(rng.next() % UInt64(spanSeconds)))
        let input = 50 + rng.next() % 4000
        let output = 10 + rng.next() % 800
        let gpu = Double(input + output * 20) / 1000.0
        let error = rng.next() % 50 == 0
        var s = "{\"request_id\":\"\(requestID ?? "req-\(i)")\",\"tenant\":\"\(tenant)\",\"model\":\"\(model)\",\"accelerator\":\"\(accel)\","
        s += "\"pool\":\"\(accel.lowercased())-pool\",\"started_at\":\"\(at.rfc3339)\",\"gpu_seconds\":\(gpu),"
        s += "\"input_tokens\":\(input),\"output_tokens\":\(output),\"cached_input_tokens\":\(input / 4),"
        s += "\"ttft_ms\":\(100 + rng.next() % 900),\"tpot_ms\":\(Double(rng.next() % 4000) / 100),\"e2e_ms\":\(1000 + rng.next() % 20000),"
        s += error ? "\"status\":\"error\",\"error_type\":\"timeout\"," : "\"status\":\"ok\","
        s += "\"labels\":{\"team\":\"team-\(rng.next() % 8)\",\"env\":\"prod\"}}"
        return s
    }

    public static func ndjson(_ range: Range<Int>, tenant: String? = nil) -> String {
        range.map { json($0, tenant: tenant) }.joined(separator: "\n") + "\n"
    }
}

/// The core's seeded generator (SplitMix64), seeded as the test data always was.
public typealias SplitMix = SplitMix64

extension SplitMix64 {
    public init(seed: UInt64) { self.init(state: seed &+ 0x9E37_79B9_7F4A_7C15) }
}

extension SampleRecords {
    /// One record's JSON with each field's raw JSON text, so that a test can put any value in any
    /// field; `overrides` maps a field to its raw JSON, or to nil to leave the field out.
    public static func record(_ id: String = "req-1", tenant: String = "acme", _ overrides: [String: String?] = [:]) -> String {
        var fields: [(String, String)] = [
            ("request_id", "\"\(id)\""), ("tenant", "\"\(tenant)\""), ("model", "\"llama-3.1-70b\""),
            ("accelerator", "\"H100\""), ("started_at", "\"2026-11-01T10:00:00Z\""), ("gpu_seconds", "2.5"),
            ("input_tokens", "1200"), ("output_tokens", "300"),
        ]
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            if let i = fields.firstIndex(where: { $0.0 == key }) {
                if let value { fields[i].1 = value } else { fields.remove(at: i) }
            } else if let value {
                fields.append((key, value))
            }
        }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}
