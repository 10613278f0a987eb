import Foundation
import GPULedgerCore
@testable import GPULedgerTelemetry
import Testing

@Suite struct GPUSelectorTests {
    @Test func aSelectorBecomesPromQLMatchersWithItsStringsEscaped() throws {
        let (s, problems) = GPUSelector.parse(["namespace": "llm-serving", "Hostname": #"gpu-"a"-\d+"#])
        #expect(problems.isEmpty)
        let selector = try #require(s)
        #expect(selector.promQL == #"{Hostname=~"gpu-\"a\"-\\d+",namespace=~"llm-serving"}"#)
        #expect(GPUSelector.parse(json: selector.json) == selector)
    }

    @Test func whatIsWrongIsSaidPerLabel() {
        let (s, problems) = GPUSelector.parse(["9lives": "x", "__name__": "y", "Hostname": "(", "gpu": 3, "ok": "a.*"])
        #expect(s == nil)
        #expect(problems.map(\.field) == ["gpu_selector.9lives", "gpu_selector.Hostname", "gpu_selector.__name__", "gpu_selector.gpu"])
        #expect(GPUSelector.parse([String: Any]()).1.first?.message.contains("at least one label") == true)
        #expect(GPUSelector.parse("gpu-a").1.first?.field == "gpu_selector")
        // What RE2 (Prometheus) lacks is refused; the same characters escaped are literals.
        #expect(GPUSelector.parse(["Hostname": "gpu-(?!b).*"]).1.first?.message.contains("lookahead (?!") == true)
        #expect(GPUSelector.parse(["Hostname": #"(a)\1"#]).1.first?.message.contains(#"backreference \1"#) == true)
        #expect(GPUSelector.parse(["Hostname": #"\\1\(\?=x"#]).1.isEmpty)
        // PostgreSQL's jsonb refuses U+0000 (schemathesis found the 500 this was).
        #expect(GPUSelector.parse(["qjl": "a\u{0}b"]).1.map(\.field) == ["gpu_selector.qjl"])
    }
}

@Suite struct HardwareFiguresTests {
    func figures(busyGPUs: Double) -> HardwareFigures {
        HardwareFigures(utilization: busyGPUs / 4, utilizationSource: "x", busyGPUs: busyGPUs, memoryUsedRatioMax: nil, powerWattsMean: nil,
                        temperatureCMax: nil, gpus: 4)
    }

    /// 4 GPUs paid for an hour at $2.50 = $10.00; the hardware busy 1.5 GPUs on average: 2.5 of
    /// the 4 GPU-hours idle, so $6.25 of the bill paid for idle hardware.
    @Test func theIdleShareOfThePaidCost() {
        let f = figures(busyGPUs: 1.5)
        #expect(f.idleAllocatedCost(paidCost: 10, provisionedGPUSeconds: 14_400, windowSeconds: 3600) == Decimal(string: "6.25"))
        #expect(f.busyGPUSeconds(windowSeconds: 3600) == 5400)
        // Busier than paid for (GPUs outside the pool's capacity events): nothing idle.
        #expect(figures(busyGPUs: 5).idleAllocatedCost(paidCost: 10, provisionedGPUSeconds: 14_400, windowSeconds: 3600) == 0)
        // Nothing paid for: nothing idle to pay for.
        #expect(f.idleAllocatedCost(paidCost: 0, provisionedGPUSeconds: 0, windowSeconds: 3600) == 0)
    }

    @Test func prometheusVectorAnswersAreRead() throws {
        let body = #"""
            {"status":"success","data":{"resultType":"vector","result":[
              {"metric":{"Hostname":"gpu-a-1","gpu":"0","UUID":"GPU-1"},"value":[1764600000.000,"0.25"]},
              {"metric":{"Hostname":"gpu-a-1","gpu":"1"},"value":[1764600000.000,"NaN"]},
              {"metric":{},"value":[1764600000.000,"75"]}]}}
            """#
        let samples = try PrometheusClient.parse(Data(body.utf8))
        #expect(samples.map(\.value) == [0.25, 75]) // NaN (no samples in the window) is left out
        #expect(HardwareTelemetry.gpu(samples[0]) == "GPU-1")
        #expect(HardwareTelemetry.gpu(.init(labels: ["Hostname": "h", "gpu": "3"], value: 1)) == "h/3")
        #expect(throws: PrometheusClient.QueryError.self) {
            try PrometheusClient.parse(Data(#"{"status":"error","errorType":"bad_data","error":"parse error"}"#.utf8))
        }
        #expect(throws: PrometheusClient.QueryError.self) {
            try PrometheusClient.parse(Data(#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#.utf8))
        }
    }
}
