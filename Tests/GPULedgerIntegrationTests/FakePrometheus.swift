import Foundation
import Hummingbird
import HummingbirdTesting

/// A stand-in for Prometheus's query API in the Swift suite (scripts/dcgm-test runs the real
/// one): every GPU series is constant, so avg_over_time, max_over_time and the memory ratio of
/// a window are the GPU's value; it answers the queries `HardwareTelemetry` sends, by the DCGM
/// series they name, for the GPUs whose Hostname the query's selector matches.
struct FakePrometheus: Sendable {
    struct GPU: Sendable {
        var host: String
        var index: Int
        var active: Double
        var used, free: Double
        var power, temp: Double
    }

    var gpus: [GPU]

    func answer(_ query: String) -> String {
        // The selector's Hostname regular expression, e.g. {Hostname=~"gpu-a-.*"}.
        let hostPattern = query.range(of: #"Hostname=~"([^"]*)""#, options: .regularExpression).map { r -> String in
            String(query[r].dropFirst("Hostname=~\"".count).dropLast())
        } ?? ".*"
        let regex = try? NSRegularExpression(pattern: "^(?:\(hostPattern))$")
        let mine = gpus.filter { g in regex?.firstMatch(in: g.host, range: NSRange(g.host.startIndex..., in: g.host)) != nil }
        func value(_ g: GPU) -> Double? {
            if query.hasPrefix("max_over_time(DCGM_FI_DEV_FB_USED") { return g.used / (g.used + g.free) }
            if query.contains("DCGM_FI_PROF_GR_ENGINE_ACTIVE") { return g.active }
            if query.contains("DCGM_FI_DEV_GPU_UTIL") { return nil } // the profiling series is there: no fallback needed
            if query.contains("DCGM_FI_DEV_POWER_USAGE") { return g.power }
            if query.contains("DCGM_FI_DEV_GPU_TEMP") { return g.temp }
            return nil
        }
        let result = mine.compactMap { g -> String? in
            value(g).map { #"{"metric":{"Hostname":"\#(g.host)","gpu":"\#(g.index)","UUID":"GPU-\#(g.host)-\#(g.index)"},"value":[0,"\#($0)"]}"# }
        }
        return #"{"status":"success","data":{"resultType":"vector","result":[\#(result.joined(separator: ","))]}}"#
    }

    /// Runs `body` with the fake listening on a free loopback port (its base URL).
    func run(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        let me = self
        router.get("api/v1/query") { request, _ -> Response in
            let query = request.uri.queryParameters.get("query") ?? ""
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: me.answer(query))))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            try await body("http://127.0.0.1:\(client.port!)")
        }
    }
}
