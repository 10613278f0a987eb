/// The rate history in memory, for the cost counters of `/metrics`: prices a record the way the
/// ledger does (its registered pool's override price, else the rate in force for the pool's
/// pinned key, else its accelerator's default key; a pool applies only to records of its
/// accelerator), at the rate in force when it started.
///
/// Prometheus values are floating point, so this gives `Double` dollars for a metric, never for
/// the ledger: every figure the API answers is computed exactly in PostgreSQL.
public struct PriceBook: Sendable {
    public struct Key: Hashable, Sendable {
        public var provider, region, accelerator, tier: String
        public init(provider: String, region: String, accelerator: String, tier: String) {
            self.provider = provider; self.region = region; self.accelerator = accelerator; self.tier = tier
        }
    }

    public struct Pool: Sendable {
        public var accelerator: String
        public var key: Key
        public var overrideUSDPerGPUHour: Double?
        public init(accelerator: String, key: Key, overrideUSDPerGPUHour: Double?) {
            self.accelerator = accelerator; self.key = key; self.overrideUSDPerGPUHour = overrideUSDPerGPUHour
        }
    }

    /// Per key, (effective from in microseconds, USD per GPU-hour), sorted by time.
    public private(set) var rates: [Key: [(from: Int64, usd: Double)]]
    public var defaults: [String: Key]
    public var pools: [String: Pool]

    public init(rates: [Key: [(from: Int64, usd: Double)]] = [:], defaults: [String: Key] = [:], pools: [String: Pool] = [:]) {
        self.rates = rates.mapValues { $0.sorted { $0.from < $1.from } }
        self.defaults = defaults
        self.pools = pools
    }

    /// How a record of this accelerator on this pool is priced: the pool's override price, or
    /// the price history of the rate key it is priced at (nil: none).
    public func prices(accelerator: String, pool: String?) -> (override: Double?, history: [(from: Int64, usd: Double)]?) {
        var key = defaults[accelerator]
        if let pool, let p = pools[pool], p.accelerator == accelerator {
            if let price = p.overrideUSDPerGPUHour { return (price, nil) }
            key = p.key
        }
        return (nil, key.flatMap { rates[$0] })
    }

    /// The last rate of `history` (sorted by time) that took effect at or before `time`.
    public static func rate(in history: [(from: Int64, usd: Double)], at time: Timestamp) -> Double? {
        var (lo, hi) = (0, history.count)
        while lo < hi {
            let mid = (lo + hi) / 2
            if history[mid].from <= time.microseconds { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : history[lo - 1].usd
    }
}
