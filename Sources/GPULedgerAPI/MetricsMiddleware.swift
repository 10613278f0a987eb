import GPULedgerHTTP
import Hummingbird

/// Records every request's duration by route and status class.
public struct MetricsMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext
    let metrics: AppMetrics

    public init(metrics: AppMetrics) { self.metrics = metrics }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            metrics.request(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: response.status.code,
                            duration: ContinuousClock.now - start)
            return response
        } catch {
            metrics.request(route: context.endpointPath ?? "unmatched", method: request.method.rawValue,
                            status: AppError.from(error).status.code, duration: ContinuousClock.now - start)
            throw error
        }
    }
}
