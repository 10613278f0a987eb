import Foundation
import GPULedgerCore
import GPULedgerStore

/// A pool's three views of one window side by side: the GPU-hours it paid for, those its
/// records account for, and those its hardware was busy (dcgm-exporter through Prometheus), with
/// the paid cost of the hardware's idle time ("allocated but idle").
public struct PoolHardwareRow: Sendable, Equatable {
    public var pool: String
    public var figures: HardwareFigures?
    /// Why `figures` is nil.
    public var note: String?
    public var paidGPUSeconds: Decimal
    public var paidCost: Decimal?
    public var ledgerGPUSeconds: Double
    public var windowSeconds: Double

    public var busyGPUSeconds: Double? { figures.map { $0.busyGPUSeconds(windowSeconds: windowSeconds) } }
    /// nil without figures or without a priced capacity.
    public var idleAllocatedCost: Decimal? {
        guard let figures, let paidCost else { return nil }
        return figures.idleAllocatedCost(paidCost: paidCost, provisionedGPUSeconds: paidGPUSeconds, windowSeconds: windowSeconds)
    }
}

/// Joins the ledger (the pools' selectors and paid capacity) with the hardware's figures.
public struct PoolHardware: Sendable {
    let stats: StatsStore
    let telemetry: HardwareTelemetry

    public init(stats: StatsStore, telemetry: HardwareTelemetry) {
        self.stats = stats
        self.telemetry = telemetry
    }

    public init(stats: StatsStore, prometheusURL: String) {
        self.init(stats: stats, telemetry: HardwareTelemetry(prometheus: PrometheusClient(baseURL: prometheusURL)))
    }

    public func selectors() async throws -> [String: GPUSelector] { try await stats.gpuSelectors() }

    /// Every pool with capacity in `[from, to)`: its row (the ledger's GPU-seconds from the summaries).
    public func rows(from: Timestamp, to: Timestamp, now: Timestamp) async throws -> [PoolHardwareRow] {
        let selectors = try await selectors()
        var out: [PoolHardwareRow] = []
        for (pool, gs) in try await stats.poolLedger(from: from, to: to) {
            out.append(try await row(pool: pool, selector: selectors[pool], from: from, to: to, now: now, ledgerGPUSeconds: gs))
        }
        return out
    }

    /// `pool` over `[from, to)`; `ledgerGPUSeconds`: what its records account for there.
    public func row(pool: String, selector: GPUSelector?, from: Timestamp, to: Timestamp, now: Timestamp,
                    ledgerGPUSeconds: Double) async throws -> PoolHardwareRow {
        let end = min(to.microseconds, now.microseconds)
        let window = Double(max(end - from.microseconds, 0)) / 1e6
        let paid = try await stats.paid(pool: pool, from: from, to: to, now: now)
        var row = PoolHardwareRow(pool: pool, figures: nil, note: nil, paidGPUSeconds: paid.provisionedGPUSeconds, paidCost: paid.cost,
                                  ledgerGPUSeconds: ledgerGPUSeconds, windowSeconds: window)
        guard let selector else {
            row.note = "pool \(pool) has no gpu_selector (PUT /v1/pools/\(pool) with \"gpu_selector\")"
            return row
        }
        switch await telemetry.figures(selector, from: from, to: to, now: now) {
        case .figures(let f): row.figures = f
        case .missing(let why): row.note = why
        }
        return row
    }
}
