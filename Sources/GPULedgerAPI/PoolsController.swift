import Foundation
import GPULedgerCore
import GPULedgerHTTP
import GPULedgerStore
import Hummingbird
import NIOCore

/// `PUT /v1/pools/{pool}`, `POST /v1/pools/{pool}/capacity`, `GET /v1/pools`, `GET /v1/pools/{pool}`.
struct PoolsController {
    let pools: PoolStore

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("pools", use: list)
        group.get("pools/:pool", use: show)
        group.put("pools/:pool", use: put)
        group.post("pools/:pool/capacity", use: addCapacity)
        group.get("pools/:pool/token-weights", use: fitWeights)
    }

    /// `GET /v1/pools/{pool}/token-weights?from=&to=` (admin, finance): the token weights that best
    /// fit the GPU-seconds the pool's records measured, hour by hour (default: the 30 days before
    /// now), with R², next to the weights in force.
    @Sendable func fitWeights(_ request: Request, context: AppRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard Access.seesTheFleet(principal) else { throw AppError.forbidden("only admin and finance keys read weight fits") }
        let params = try Query(request, allowed: ["from", "to"])
        let name = try PathName.pool(context)
        let (from, to) = try params.range(now: context.now) { $0.adding(days: -30) }
        guard let (pool, _) = try await pools.get(name) else { throw AppError.notFound("no pool \(name)") }
        let hours = try await pools.measuredHours(pool: name, from: from, to: to)
        let fit = TokenWeightFit.fit(hours)
        struct W: Encodable { var input, cached_input, output: Double }
        struct Answer: Encodable {
            var pool, from, to: String
            var hours: Int
            var r_squared: Nullable<Double>
            var gpu_seconds_per_token: Nullable<W>
            var token_weights: Nullable<W>
            var current: PoolAnswer.Weights
            var method: String
        }
        func round(_ x: Double, _ places: Double = 1e6) -> Double { (x * places).rounded() / places }
        return try JSONResponse.make(Answer(
            pool: name, from: from.rfc3339, to: to.rfc3339, hours: hours.count, r_squared: .init(fit.map { round($0.rSquared) }),
            gpu_seconds_per_token: .init(fit.map { W(input: round($0.secondsPerToken.input, 1e12), cached_input: round($0.secondsPerToken.cachedInput, 1e12),
                                                   output: round($0.secondsPerToken.output, 1e12)) }),
            token_weights: .init(fit.map { W(input: $0.weights.input, cached_input: $0.weights.cachedInput, output: $0.weights.output) }),
            current: .init(input: pool.tokenWeights.input, cached_input: pool.tokenWeights.cachedInput, output: pool.tokenWeights.output),
            method: "non-negative least squares of each hour's measured GPU-seconds on its uncached input, cached input and output tokens (at least 3 hours)"))
    }

    struct PoolAnswer: Encodable {
        struct Event: Encodable { var at: String; var gpus: Int }
        var pool: String
        var accelerator: String
        var provider: String
        var region: String
        var tier: String
        /// null when the rate cards price it.
        var usd_per_gpu_hour: Nullable<String>
        var allocation: String
        var token_weights: Weights
        /// Which dcgm-exporter series are its GPUs (label → regular expression), or null.
        var gpu_selector: Nullable<[String: String]>
        var capacity: [Event]
        /// Each change of the allocation or the weights (each re-priced the pool's history).
        var changes: [Change]

        struct Weights: Encodable { var input, cached_input, output: Decimal }
        struct Change: Encodable { var at, old_allocation, new_allocation, old_weights, new_weights: String }

        init(_ pool: Pool, _ events: [CapacityEvent], changes: [PoolChange] = []) {
            allocation = pool.allocation.rawValue
            gpu_selector = .init(pool.gpuSelector.map { Dictionary(uniqueKeysWithValues: $0.matchers.map { ($0.label, $0.regex) }) })
            token_weights = Weights(input: pool.tokenWeights.input, cached_input: pool.tokenWeights.cachedInput, output: pool.tokenWeights.output)
            self.changes = changes.map {
                Change(at: $0.at.rfc3339, old_allocation: $0.oldAllocation, new_allocation: $0.newAllocation,
                       old_weights: $0.oldWeights, new_weights: $0.newWeights)
            }
            self.pool = pool.name
            accelerator = pool.accelerator
            provider = pool.provider
            region = pool.region
            tier = pool.tier.rawValue
            usd_per_gpu_hour = .init(pool.usdPerGPUHour)
            capacity = events.map { Event(at: $0.at.rfc3339, gpus: $0.gpus) }
        }
    }

    static func requireAdmin(_ context: AppRequestContext) throws {
        guard try context.requirePrincipal().role == .admin else { throw AppError.forbidden("only an admin key manages pools") }
    }



    @Sendable func put(_ request: Request, context: AppRequestContext) async throws -> Response {
        try Self.requireAdmin(context)
        let name = try PathName.pool(context)
        let object = try await JSONBody.object(request)
        var details: [AppError.Detail] = []
        let allowed: Set<String> = ["accelerator", "provider", "region", "tier", "usd_per_gpu_hour", "allocation", "token_weights", "gpu_selector"]
        for key in object.keys.sorted() where !allowed.contains(key) {
            details.append(.init(field: key, message: "unknown field; the fields are accelerator, provider, region, tier, usd_per_gpu_hour, allocation, token_weights, gpu_selector"))
        }
        var selector: GPUSelector?
        if let raw = object["gpu_selector"], !(raw is NSNull) {
            let (parsed, problems) = GPUSelector.parse(raw)
            selector = parsed
            details += problems.map { AppError.Detail(field: $0.field, message: $0.message) }
        }
        var allocation = Allocation.gpuSeconds
        if let raw = object["allocation"], !(raw is NSNull) {
            if let s = raw as? String, let a = Allocation(rawValue: s) { allocation = a } else {
                details.append(.init(field: "allocation", message: "must be gpu_seconds or tokens"))
            }
        }
        var weights = TokenWeights.default
        if let raw = object["token_weights"], !(raw is NSNull) {
            let (parsed, problems) = TokenWeights.parse(raw)
            if let parsed { weights = parsed }
            details += problems.map { AppError.Detail(field: $0.field, message: $0.message) }
        }
        func text(_ key: String) -> String? {
            guard let v = object[key] as? String, !v.isEmpty, v.count <= 64 else {
                details.append(.init(field: key, message: "is required: a string of 1 to 64 characters"))
                return nil
            }
            return v
        }
        let accelerator = text("accelerator"), provider = text("provider"), region = text("region")
        let tier = (object["tier"] as? String).flatMap(Tier.init(rawValue:))
        if tier == nil { details.append(.init(field: "tier", message: "must be on_demand, spot, reserved or committed")) }
        var price: String?
        if let raw = object["usd_per_gpu_hour"], !(raw is NSNull) {
            if let s = raw as? String, RateCards.isPlainDecimal(s) { price = s } else {
                details.append(.init(field: "usd_per_gpu_hour", message: "must be a decimal string such as \"2.49\" (money is never a JSON number), or null"))
            }
        }
        guard details.isEmpty, let accelerator, let provider, let region, let tier else {
            throw AppError(.unprocessableContent, code: "invalid_pool", message: "the pool definition is invalid; nothing was changed", details: details)
        }
        let pool = Pool(name: name, accelerator: accelerator, provider: provider, region: region, tier: tier, usdPerGPUHour: price,
                        allocation: allocation, tokenWeights: weights, gpuSelector: selector)
        let outcome = try await pools.put(pool)
        let events = try await pools.get(name)?.1 ?? []
        return try JSONResponse.make(PoolAnswer(pool, events, changes: try await pools.changes(name)), status: outcome == .created ? .created : .ok)
    }

    @Sendable func addCapacity(_ request: Request, context: AppRequestContext) async throws -> Response {
        try Self.requireAdmin(context)
        let name = try PathName.pool(context)
        let object = try await JSONBody.object(request)
        var details: [AppError.Detail] = []
        for key in object.keys.sorted() where key != "at" && key != "gpus" {
            details.append(.init(field: key, message: "unknown field; the fields are at, gpus"))
        }
        let at = (object["at"] as? String).flatMap(Timestamp.parseRequestTime)
        if at == nil { details.append(.init(field: "at", message: "must be an RFC 3339 time or a date, in a year from 1970 to 8999")) }
        var gpus: Int?
        // (`is Bool` is true for the numbers 0 and 1 on Linux; a JSON true is a 'c'-typed NSNumber.)
        if let n = object["gpus"] as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue == n.doubleValue.rounded(),
           n.doubleValue >= 0, n.doubleValue <= 1_000_000 {
            gpus = Int(n.doubleValue)
        } else {
            details.append(.init(field: "gpus", message: "must be an integer from 0 to 1000000"))
        }
        guard details.isEmpty, let at, let gpus else {
            throw AppError(.unprocessableContent, code: "invalid_capacity", message: "the capacity event is invalid; nothing was stored", details: details)
        }
        switch try await pools.addCapacity(pool: name, CapacityEvent(at: at, gpus: gpus)) {
        case .noSuchPool:
            throw AppError.notFound("no pool \(name); create it with PUT /v1/pools/\(name)")
        case .conflict(let existing):
            throw AppError(.conflict, code: "conflict", message: "pool \(name) already has \(existing) GPUs from \(at.rfc3339); capacity events are not rewritten")
        case .created, .unchanged:
            let (pool, events) = try await pools.get(name) ?? (Pool(name: name, accelerator: "", provider: "", region: "", tier: .onDemand, usdPerGPUHour: nil), [])
            return try JSONResponse.make(PoolAnswer(pool, events), status: .created)
        }
    }

    @Sendable func show(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requirePrincipal()
        let name = try PathName.pool(context)
        guard let (pool, events) = try await pools.get(name) else { throw AppError.notFound("no pool \(name)") }
        return try JSONResponse.make(PoolAnswer(pool, events, changes: try await pools.changes(name)))
    }

    struct ListAnswer: Encodable { var pools: [PoolAnswer] }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requirePrincipal()
        var out: [PoolAnswer] = []
        for name in try await pools.list() {
            if let (pool, events) = try await pools.get(name) { out.append(PoolAnswer(pool, events, changes: try await pools.changes(name))) }
        }
        return try JSONResponse.make(ListAnswer(pools: out))
    }
}
