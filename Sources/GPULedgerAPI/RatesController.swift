import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird
import Logging
import Synchronization

struct RatesController {
    let rates: RateStore
    let pricing: PricingState

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("rates", use: list)
        group.post("rates/reload", use: reload)
    }

    struct RateAnswer: Encodable {
        var provider, region, accelerator, tier: String
        var usd_per_gpu_hour: String
        var effective_from: String
        var source: String
        var card: String
        var first_seen_at: String
        var changed_at: String
    }

    struct DefaultAnswer: Encodable { var accelerator, provider, region, tier: String }

    struct ListAnswer: Encodable {
        var at: String
        var rates: [RateAnswer]
        var defaults: [DefaultAnswer]
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requirePrincipal() // every role may read list prices
        let at = try Query(request, allowed: ["at"]).time("at") ?? context.now
        let inForce = try await rates.inForce(at: at)
        let defaults = try await rates.defaults()
        return try JSONResponse.make(ListAnswer(
            at: at.rfc3339,
            rates: inForce.map {
                RateAnswer(provider: $0.provider, region: $0.region, accelerator: $0.accelerator, tier: $0.tier,
                           usd_per_gpu_hour: $0.usdPerGPUHour, effective_from: $0.effectiveFrom.rfc3339, source: $0.source,
                           card: $0.card, first_seen_at: $0.firstSeenAt.rfc3339, changed_at: $0.changedAt.rfc3339)
            },
            defaults: defaults.map { DefaultAnswer(accelerator: $0.accelerator, provider: $0.key.provider, region: $0.key.region, tier: $0.key.tier.rawValue) }))
    }

    struct ReloadAnswer: Encodable {
        var rates: Int
        var added: Int
        var changed: Int
        var retired: Int
        var restored: Int
    }

    @Sendable func reload(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard principal.role == .admin else { throw AppError.forbidden("only an admin key reloads the rate cards") }
        guard let (loaded, sync) = try await pricing.load(into: rates, allOrNothing: true, logger: context.logger) else {
            throw AppError(.notFound, code: "no_rate_cards", message: "the service has no rate-card folder (--pricing) or it does not exist")
        }
        if !loaded.errors.isEmpty {
            throw AppError(.unprocessableContent, code: "invalid_rate_cards",
                           message: "\(loaded.refusedFiles.count) rate card(s) refused; nothing was changed, the rates in force stay",
                           details: loaded.errors.prefix(100).map {
                               AppError.Detail(field: "\($0.file):\($0.line):\($0.column)", message: $0.message)
                           })
        }
        return try JSONResponse.make(ReloadAnswer(rates: loaded.rates.count, added: sync.added, changed: sync.changed,
                                                  retired: sync.retired, restored: sync.restored))
    }
}
