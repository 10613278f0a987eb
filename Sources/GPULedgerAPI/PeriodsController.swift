import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird

/// `POST /v1/periods/{YYYY-MM}/close`, `GET /v1/periods` (contract section 5, "Closing a month").
struct PeriodsController {
    let periods: PeriodStore
    let configuration: AppConfiguration

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("periods", use: list)
        group.post("periods/:period/close", use: close)
    }

    struct PeriodAnswer: Encodable {
        var period, closed_at, invoice_id, total_cost_usd: String

        init(_ p: ClosedPeriod) {
            period = p.period.description
            closed_at = p.closedAt.rfc3339
            invoice_id = p.invoiceID
            total_cost_usd = CentRounding.cents(p.totalCost)
        }
    }

    struct ListAnswer: Encodable { var periods: [PeriodAnswer] }

    static func requireCloser(_ context: AppRequestContext) throws -> Principal {
        let principal = try context.requirePrincipal()
        guard Access.seesTheFleet(principal) else {
            throw AppError.forbidden("a \(principal.role.rawValue) key cannot close or list months; use an admin or finance key")
        }
        return principal
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try Self.requireCloser(context)
        _ = try Query(request, allowed: [])
        return try JSONResponse.make(ListAnswer(periods: try await periods.closed().map(PeriodAnswer.init)))
    }

    @Sendable func close(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try Self.requireCloser(context)
        _ = try Query(request, allowed: [])
        let text = try context.parameters.require("period")
        guard let period = Period.parse(text) else {
            throw AppError.notFound("there is no month \(text): months are written YYYY-MM (2026-10)")
        }
        guard period.end <= context.now else {
            throw AppError(.unprocessableContent, code: "period_not_over",
                           message: "\(period) is not over yet (it ends \(period.end.rfc3339)); only a finished month can be closed")
        }
        do {
            let closed = try await periods.close(period, now: context.now, by: principal.name, invoicePrefix: configuration.billingAccountID)
            context.logger.notice("month closed", metadata: ["period": "\(period)", "invoice_id": "\(closed.invoiceID)"])
            return try JSONResponse.make(PeriodAnswer(closed), status: .created)
        } catch PeriodStore.CloseError.alreadyClosed(let id) {
            throw AppError(.conflict, code: "period_closed", message: "\(period) is closed already (invoice \(id)); a closed month's invoice is final")
        }
    }
}
