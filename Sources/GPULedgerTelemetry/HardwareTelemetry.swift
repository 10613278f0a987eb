import Foundation
import GPULedgerCore

/// What a pool's GPUs did over a window, read from the Prometheus that scrapes NVIDIA's
/// dcgm-exporter (`serve --prometheus-url`): contract section 5, "GPU hardware telemetry".
public struct HardwareTelemetry: Sendable {
    public let prometheus: PrometheusClient

    public init(prometheus: PrometheusClient) { self.prometheus = prometheus }

    /// The figures, or why there are none (Prometheus away, or no series for the selector).
    public enum Answer: Sendable, Equatable {
        case figures(HardwareFigures)
        case missing(String)
    }

    /// The pool's GPUs (`selector`) over `[from, to)`, evaluated at `to` (or `now`, if earlier)
    /// over the window's whole seconds.
    public func figures(_ selector: GPUSelector, from: Timestamp, to: Timestamp, now: Timestamp) async -> Answer {
        let end = min(to.microseconds, now.microseconds)
        let seconds = (end - from.microseconds) / 1_000_000
        guard seconds >= 1 else { return .missing("the window has not begun") }
        let at = Double(end) / 1e6
        let (s, w) = (selector.promQL, "[\(seconds)s]")
        do {
            async let active = prometheus.query("avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE\(s)\(w))", at: at)
            async let util = prometheus.query("avg_over_time(DCGM_FI_DEV_GPU_UTIL\(s)\(w)) / 100", at: at)
            // Used + free is each GPU's total at every sample (both come in one scrape), so the
            // highest used over the mean total is the highest ratio, with no subquery.
            async let memory = prometheus.query(
                "max_over_time(DCGM_FI_DEV_FB_USED\(s)\(w)) / (avg_over_time(DCGM_FI_DEV_FB_USED\(s)\(w)) + avg_over_time(DCGM_FI_DEV_FB_FREE\(s)\(w)))", at: at)
            async let power = prometheus.query("avg_over_time(DCGM_FI_DEV_POWER_USAGE\(s)\(w))", at: at)
            async let temperature = prometheus.query("max_over_time(DCGM_FI_DEV_GPU_TEMP\(s)\(w))", at: at)
            let (a, u, m, p, t) = try await (active, util, memory, power, temperature)
            let (busy, source) = a.isEmpty ? (u, "DCGM_FI_DEV_GPU_UTIL / 100") : (a, "DCGM_FI_PROF_GR_ENGINE_ACTIVE")
            guard !busy.isEmpty else {
                return .missing("Prometheus has no DCGM_FI_PROF_GR_ENGINE_ACTIVE or DCGM_FI_DEV_GPU_UTIL series matching \(s) in the window")
            }
            let values = busy.map { min(max($0.value, 0), 1) }
            let gpus = Set(busy.map(Self.gpu)).count
            return .figures(HardwareFigures(
                utilization: values.reduce(0, +) / Double(values.count), utilizationSource: source, busyGPUs: values.reduce(0, +),
                memoryUsedRatioMax: m.map(\.value).max(), powerWattsMean: p.isEmpty ? nil : p.map(\.value).reduce(0, +) / Double(p.count),
                temperatureCMax: t.map(\.value).max(), gpus: gpus))
        } catch {
            return .missing(String(describing: error))
        }
    }

    /// A GPU's identity in dcgm-exporter's labels: its UUID, else host and index, else all labels.
    static func gpu(_ sample: PrometheusClient.Sample) -> String {
        if let uuid = sample.labels["UUID"] { return uuid }
        if let host = sample.labels["Hostname"], let index = sample.labels["gpu"] { return host + "/" + index }
        return sample.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
