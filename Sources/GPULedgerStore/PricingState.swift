import GPULedgerCore
import Logging
import Synchronization

/// The rate cards in force in this process: which accelerator names ingest accepts.
public final class PricingState: Sendable {
    private let names: Mutex<Set<String>?>
    public let directory: String?

    public init(directory: String?, accelerators: Set<String>?) {
        self.directory = directory
        self.names = Mutex(accelerators)
    }

    public var accelerators: Set<String>? { names.withLock { $0 } }
    public func set(_ accelerators: Set<String>?) { names.withLock { $0 = accelerators } }

    /// Loads the cards from `directory` into the rate history. With `allOrNothing`, any refused
    /// file stops the whole load (nothing changes); otherwise the good files load and the
    /// refused ones keep what they had.
    public func load(into rates: RateStore, allOrNothing: Bool, logger: Logger) async throws -> (RateCards.Loaded, RateSync)? {
        guard let directory, let loaded = try RateCardFiles.load(directory: directory) else { return nil }
        if allOrNothing, !loaded.errors.isEmpty { return (loaded, RateSync()) }
        for error in loaded.errors { logger.error("rate card refused: \(error)") }
        let sync = try await rates.sync(loaded)
        let endOfTime = Timestamp.parseRFC3339("9999-12-31T00:00:00Z")!
        let inForce = Set(try await rates.inForce(at: endOfTime).map(\.accelerator))
        set(inForce.isEmpty ? nil : inForce)
        logger.info("rate cards loaded", metadata: [
            "rates": "\(loaded.rates.count)", "added": "\(sync.added)", "changed": "\(sync.changed)",
            "retired": "\(sync.retired)", "restored": "\(sync.restored)",
        ])
        return (loaded, sync)
    }
}

/// `GET /v1/rates?at=`, `POST /v1/rates/reload`.
