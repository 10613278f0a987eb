/// A batch's records grouped by tenant, model, accelerator and pool, found once per batch.
///
/// Ingest groups a batch by these four names three times: for its summary deltas (per hour too),
/// for the pool-days whose versions it bumps (pool and day), and for the usage metrics. Each
/// grouping hashed the record's strings again; in a profile of `gpuledger serve` during a month
/// backfill, hashing was a tenth of its CPU (docs/performance-log.md, "Ingest"). With the groups found once,
/// the other groupings key on small integers.
public struct RecordGroups: Sendable {
    /// Each group's first record: an index into the batch, in the order groups first appear.
    public private(set) var firsts: [Int] = []
    /// Each record's group: an index into `firsts`.
    public private(set) var member: [Int32] = []
    /// Each group's pool: an index into `pools`, or -1 for none.
    public private(set) var poolOf: [Int32] = []
    /// The batch's pools, in the order they first appear.
    public private(set) var pools: [String] = []

    public var count: Int { firsts.count }

    public init(_ records: [UsageRecord]) {
        struct Key: Hashable { var tenant: String; var model: String; var accelerator: String; var pool: String? }
        var index: [Key: Int32] = [:]
        var poolIndex: [String: Int32] = [:]
        member.reserveCapacity(records.count)
        for (i, r) in records.enumerated() {
            let key = Key(tenant: r.tenant, model: r.model, accelerator: r.accelerator, pool: r.pool)
            if let g = index[key] {
                member.append(g)
                continue
            }
            let g = Int32(firsts.count)
            index[key] = g
            firsts.append(i)
            member.append(g)
            if let pool = r.pool {
                if let p = poolIndex[pool] {
                    poolOf.append(p)
                } else {
                    let p = Int32(pools.count)
                    poolIndex[pool] = p
                    pools.append(pool)
                    poolOf.append(p)
                }
            } else {
                poolOf.append(-1)
            }
        }
    }

    /// The pool-days the batch touches (pool, UTC day start), each once, sorted by pool then day.
    public func poolDays(_ records: [UsageRecord]) -> [(pool: String, day: Timestamp)] {
        guard !pools.isEmpty else { return [] }
        struct PoolDay: Hashable { var pool: Int32; var day: Int64 }
        var seen = Set<PoolDay>()
        for (i, r) in records.enumerated() {
            let p = poolOf[Int(member[i])]
            if p >= 0 { seen.insert(PoolDay(pool: p, day: r.startedAt.dayStart.microseconds)) }
        }
        return seen.map { (pools[Int($0.pool)], Timestamp(microseconds: $0.day)) }
            .sorted { ($0.pool, $0.day.microseconds) < ($1.pool, $1.day.microseconds) }
    }
}
