import HTTPTypes
import Hummingbird
import Tracing

/// Hummingbird's `TracingMiddleware` (the server span of each request, the caller's
/// `traceparent` taken in), except for the probes and the scrape (`/healthz`, `/readyz`,
/// `/metrics`): a trace every few seconds per prober would bury the requests' traces.
public struct RequestTracingMiddleware<Context: RequestContext>: RouterMiddleware {
    let tracing = TracingMiddleware<Context>(recordingHeaders: [.userAgent, .contentType], redactingQueryParameters: [])
    static var untraced: Set<String> { ["/healthz", "/readyz", "/metrics"] }

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if Self.untraced.contains(request.uri.path) { return try await next(request, context) }
        return try await tracing.handle(request, context: context, next: next)
    }
}

/// Returns the request's trace context (W3C `traceparent`, `tracestate`) in the response, so a
/// caller can find the request's spans; the server span itself comes from Hummingbird's
/// `TracingMiddleware`, which takes the caller's `traceparent` in. Nothing is added when tracing
/// is off (the no-op tracer injects nothing).
public struct TraceparentMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        if let current = ServiceContext.current {
            InstrumentationSystem.instrument.inject(current, into: &response.headers, using: HTTPFieldsInjector())
        }
        return response
    }
}

struct HTTPFieldsInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPFields) {
        if let name = HTTPField.Name(key) { carrier[name] = value }
    }
}
