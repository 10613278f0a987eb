import GPULedgerHTTP
import GPULedgerStore
import Hummingbird

/// `GET /healthz` (the process is up) and `GET /readyz` (the database is reachable and migrated).
struct HealthController {
    let database: Database
    let migrator: Migrator

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("healthz") { _, _ in try JSONResponse.make(["status": "ok"]) }
        router.get("readyz") { _, _ in
            do {
                guard try await migrator.isCurrent(database) else {
                    return try JSONResponse.make(["status": "not ready: migrations pending"], status: .serviceUnavailable)
                }
                return try JSONResponse.make(["status": "ready"])
            } catch {
                var response = try JSONResponse.make(["status": "not ready: database unreachable"], status: .serviceUnavailable)
                response.headers[.retryAfter] = "5"
                return response
            }
        }
    }
}
