import Hummingbird
import Synchronization

/// The routes' methods by path, filled once the router has every route (`buildRouter`).
public final class RouteMethods: Sendable {
    private let table = Mutex<[(components: [Substring], methods: [String])]>([])

    public init() {}

    public func set(_ routes: [Router<AppRequestContext>.RouteDescription]) {
        var byPath: [String: Set<String>] = [:]
        for r in routes { byPath[r.path.description, default: []].insert(r.method.rawValue) }
        table.withLock { t in
            t = byPath.map { (Self.components($0.key), $0.value.sorted()) }
        }
    }

    /// The methods of the route whose path matches `path` (`:name` and `{name}` match one
    /// segment, `*` one, `**` the rest); nil when no route matches.
    func methods(for path: String) -> [String]? {
        let segments = Self.components(path)
        return table.withLock { t in
            t.first { Self.matches($0.components, segments) }?.methods
        }
    }

    static func components(_ path: String) -> [Substring] { path.split(separator: "/", omittingEmptySubsequences: true) }

    static func matches(_ pattern: [Substring], _ path: [Substring]) -> Bool {
        for (i, p) in pattern.enumerated() {
            if p == "**" { return true }
            guard i < path.count else { return false }
            if p == "*" || p.hasPrefix(":") || (p.hasPrefix("{") && p.hasSuffix("}")) { continue }
            if p != path[i] { return false }
        }
        return pattern.count == path.count
    }
}

/// A known path asked with a method it does not take: 405 with `Allow` (RFC 9110 §15.5.6), not 404.
public struct MethodNotAllowedMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext
    let routes: RouteMethods

    public init(routes: RouteMethods) { self.routes = routes }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as HTTPError where e.status == .notFound {
            guard let methods = routes.methods(for: request.uri.path), !methods.contains(request.method.rawValue) else { throw e }
            let allow = methods.joined(separator: ", ")
            throw AppError(.methodNotAllowed, code: "method_not_allowed",
                           message: "\(request.uri.path) does not take \(request.method.rawValue); it takes \(allow)", headers: [.allow: allow])
        }
    }
}
