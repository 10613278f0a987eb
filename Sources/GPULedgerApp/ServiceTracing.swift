import Foundation
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// Tracing of gpuledger itself (README, "Tracing"): spans for each request and its stages,
/// exported over OTLP/HTTP (protobuf) by swift-otel when the standard OpenTelemetry variables
/// name a collector. Without them nothing is bootstrapped: the tracing API's no-op tracer makes
/// every span in the code a few nanoseconds of nothing.
public enum ServiceTracing {
    /// Bootstraps the tracer (once per process) when `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set and `OTEL_SDK_DISABLED` is not `true`; returns
    /// the exporter's service, to run with the application's. nil: tracing is off.
    /// swift-otel reads the other standard variables itself (`OTEL_SERVICE_NAME`,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`, ...).
    public static func bootstrap(environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) throws -> (any Service)? {
        guard environment["OTEL_EXPORTER_OTLP_ENDPOINT"] != nil || environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != nil,
              environment["OTEL_SDK_DISABLED"]?.lowercased() != "true" else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = "gpuledger"
        configuration.traces.enabled = true
        configuration.metrics.enabled = false // metrics are /metrics' (Prometheus)
        configuration.logs.enabled = false // logs are JSON lines on stderr
        configuration.traces.otlpExporter.protocol = .httpProtobuf // the only exporter built (no gRPC)
        configuration.diagnosticLogger = .custom(logger)
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        logger.info("tracing: spans exported over OTLP/HTTP", metadata: [
            "endpoint": .string(environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ?? environment["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? ""),
        ])
        return backend.service
    }
}
