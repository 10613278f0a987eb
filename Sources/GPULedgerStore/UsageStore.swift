import Foundation
import GPULedgerCore
import Logging
import NIOCore
import PostgresNIO
import Tracing

/// What one ingest did.
public struct IngestOutcome: Sendable, Equatable {
    public var accepted: Int
    public var duplicates: Int
    /// Request ids among the duplicates whose content differs from the stored record.
    public var conflicts: [String]
    /// Indexes (in the batch) of the records stored; nil: all of them.
    public var acceptedIndexes: [Int]? = nil

    public init(accepted: Int, duplicates: Int, conflicts: [String], acceptedIndexes: [Int]? = nil) {
        self.accepted = accepted
        self.duplicates = duplicates
        self.conflicts = conflicts
        self.acceptedIndexes = acceptedIndexes
    }
}

/// Writes usage records to PostgreSQL.
public struct UsageStore: Sendable {
    let db: Database
    /// Told of every batch, for the fold's timing; nil: nobody asks.
    let activity: IngestActivity?
    var logger: Logger { db.logger }

    public init(database: Database, activity: IngestActivity? = nil) {
        self.db = database
        self.activity = activity
    }

    static let columns = [
        "tenant", "request_id", "model", "accelerator", "pool", "started_at", "gpu_seconds",
        "input_tokens", "output_tokens", "cached_input_tokens", "ttft_ms", "tpot_ms", "e2e_ms",
        "queue_ms", "status", "error_type", "labels",
    ]

    /// Stores a batch, all or nothing, idempotent on (tenant, request_id); returns after commit.
    ///
    /// The write path, chosen by measurement (README, "The write path"):
    /// 1. Fast path: COPY the batch straight into `usage_records` in one transaction. With no
    ///    duplicates, the normal case, this is PostgreSQL's fastest way in (as fast as `\copy`).
    /// 2. If the unique key refuses a row (a resend, or a request id twice in the batch), that
    ///    transaction is rolled back whole and the batch goes through a staging table instead:
    ///    COPY into a temporary table, then one statement that reads each row's stored record,
    ///    inserts the others with `INSERT … SELECT DISTINCT ON … ON CONFLICT DO NOTHING` (first
    ///    write wins) and returns the duplicates whose content differs (a second query compares
    ///    the rows that statement could not: a request id's later rows in the batch, and records
    ///    another transaction committed meanwhile).
    ///    Measured (docs/performance-log.md, "Ingest"): the direct path takes a month-wide backfill at
    ///    120,000–200,000 records/s here, the staging path a resent one at about 110,000
    ///    (2026-12-04), so staging is kept for the batches that need it.
    ///
    /// `groups`: the batch's `RecordGroups`, when the caller has found them already (the usage
    /// metrics group by them too).
    public func ingest(_ records: [UsageRecord], groups: RecordGroups? = nil) async throws -> IngestOutcome {
        guard !records.isEmpty else { return IngestOutcome(accepted: 0, duplicates: 0, conflicts: []) }
        let groups = groups ?? RecordGroups(records)
        guard let activity else { return try await store(records, groups) }
        activity.begin()
        var stored = 0
        defer { activity.end(records: stored) }
        let outcome = try await store(records, groups)
        stored = outcome.accepted
        return outcome
    }

    private func store(_ records: [UsageRecord], _ groups: RecordGroups) async throws -> IngestOutcome {
        do {
            let deltas = SummaryDelta.rows(records, groups: groups)
            let poolDays = groups.poolDays(records)
            try await db.withTransaction { conn in
                try await conn.query(Self.deltasWritten, logger: logger)
                try await copy(records, into: "usage_records", withOrdinal: false, on: conn)
                try await copy(deltas, on: conn)
                try await bump(poolDays, on: conn)
            }
            return IngestOutcome(accepted: records.count, duplicates: 0, conflicts: [])
        } catch let error as StoreError where error.isUniqueViolation {
            logger.debug("batch holds records already stored; taking the staging path", metadata: ["records": "\(records.count)"])
        } catch {
            throw StoreError.from(error)
        }
        return try await db.withTransaction { [self] conn in
                try await conn.query(Self.deltasWritten, logger: logger)
                try await conn.query("""
                    CREATE TEMPORARY TABLE usage_staging (LIKE usage_records INCLUDING DEFAULTS, ord integer NOT NULL)
                    ON COMMIT DROP
                    """, logger: logger)
                try await copy(records, into: "usage_staging", withOrdinal: true, on: conn)
                // Without statistics the planner guesses the staging table's size and may hash
                // the whole of usage_records for the joins below instead of probing its key. Only
                // the key's columns are analyzed: the plans below use no other column's statistics
                // (the same plans with every column analyzed), and analyzing all 18 took 46-76 ms of
                // a resent batch of 10,000, the key's two 12-17 ms (docs/performance-log.md, "Ingest").
                try await conn.query("ANALYZE usage_staging (tenant, request_id)", logger: logger)
                let cols = Self.columns.joined(separator: ", ")
                let compared = Self.columns.dropFirst(2)
                let differs = "(\(compared.map { "s.\($0)" }.joined(separator: ", "))) IS DISTINCT FROM "
                    + "(\(compared.map { "u.\($0)" }.joined(separator: ", ")))"
                // One statement reads each staged row's stored record once (`j`, in the snapshot
                // from before this statement's insert), inserts the rows not stored (first write
                // wins), writes their summary deltas and pool-days' versions, and returns:
                // a: the batch index of each row inserted; c: each stored record's row whose
                // content differs; u: the rows neither stored nor inserted, to compare once the
                // insert is seen. Those are a request id's later rows in the batch, and rows
                // whose record another transaction committed meanwhile (the insert waited for it
                // and skipped them). Before, the insert probed the key for every row and a second
                // query probed it again to compare: a resent batch of 10,000 spent 117-143 ms in
                // the two, 85-94 ms in this one (docs/performance-log.md, "Ingest").
                let rows = try await conn.query("""
                    WITH j AS MATERIALIZED (
                        SELECT s.*, u.tenant IS NOT NULL AS stored, \(unescaped: differs) AS differs
                        FROM usage_staging s LEFT JOIN usage_records u ON u.tenant = s.tenant AND u.request_id = s.request_id
                    ), ins AS (
                        INSERT INTO usage_records (\(unescaped: cols))
                        SELECT DISTINCT ON (tenant, request_id) \(unescaped: cols) FROM j WHERE NOT stored
                        ORDER BY tenant, request_id, ord
                        ON CONFLICT (tenant, request_id) DO NOTHING
                        RETURNING \(unescaped: Self.summedColumns)
                    )\(unescaped: Self.deltaCTEs(of: "ins")),
                    accepted AS (SELECT min(j.ord) AS ord FROM ins JOIN j USING (tenant, request_id) GROUP BY j.tenant, j.request_id)
                    SELECT 'a', ord, NULL::text FROM accepted
                    UNION ALL SELECT 'c', ord, request_id FROM j WHERE stored AND differs
                    UNION ALL SELECT 'u', ord, NULL FROM j WHERE NOT stored AND ord NOT IN (SELECT ord FROM accepted)
                    """, logger: logger)
                var acceptedIndexes: [Int] = []
                var differing: [(ord: Int32, id: String)] = []
                var unsettled: [Int32] = []
                for try await (kind, ord, id) in rows.decode((String, Int32, String?).self) {
                    switch kind {
                    case "a": acceptedIndexes.append(Int(ord))
                    case "c": if let id { differing.append((ord, id)) }
                    default: unsettled.append(ord)
                    }
                }
                if !unsettled.isEmpty {
                    let later = try await conn.query("""
                        SELECT s.ord, s.request_id FROM usage_staging s
                        JOIN usage_records u ON u.tenant = s.tenant AND u.request_id = s.request_id
                        WHERE s.ord = ANY(\(unsettled)) AND \(unescaped: differs)
                        """, logger: logger)
                    for try await (ord, id) in later.decode((Int32, String).self) { differing.append((ord, id)) }
                }
                let accepted = acceptedIndexes.count
                var conflicts: [String] = []
                var seen = Set<String>()
                for row in differing.sorted(by: { $0.ord < $1.ord }) where seen.insert(row.id).inserted { conflicts.append(row.id) }
                return IngestOutcome(accepted: accepted, duplicates: records.count - accepted, conflicts: conflicts,
                                     acceptedIndexes: acceptedIndexes.sorted())
        }
    }

    /// Sends the records to `COPY table FROM STDIN` in PostgreSQL's text format, in ONE write.
    ///
    /// One write on purpose: PostgresNIO 1.33.2 drops a `write` that is waiting for socket
    /// backpressure to clear when the backend's ErrorResponse (here: the unique key) arrives in
    /// that moment (`ExtendedQueryStateMachine.setAndFireError` in `.copyingData` does not fail
    /// the pending promise), and the request then hangs forever. With a single write there is
    /// never a pending one; an error is reported by CopyDone instead. The cost is the batch's
    /// COPY text in memory (about the size of the request body, which is in memory already).
    func copy(_ records: [UsageRecord], into table: String, withOrdinal: Bool, on conn: PostgresConnection) async throws {
        let columns = withOrdinal ? Self.columns + ["ord"] : Self.columns
        var encoder = CopyTextEncoder()
        encoder.bytes.reserveCapacity(records.count * 320)
        for (i, record) in records.enumerated() {
            encoder.append(record, ordinal: withOrdinal ? i : nil)
        }
        let buffer = ByteBuffer(bytes: encoder.bytes)
        try await withSpan("COPY \(table)", ofKind: .client) { span in
            span.attributes["db.system"] = "postgresql"
            span.attributes["gpuledger.records"] = records.count
            try await conn.copyFrom(table: table, columns: columns, logger: logger) { writer in
                try await writer.write(buffer)
            }
        }
    }

    /// What an INSERT into `usage_records` must add (sql/0014), as CTEs after one named `rows`
    /// that inserts with `RETURNING` the columns summed: the rows' summary deltas (the sums
    /// `SummaryDelta.rows` makes for the fast path) and their pool-days' versions.
    public static func deltaCTEs(of rows: String) -> String {
        """
        , deltas AS (
            INSERT INTO usage_delta (\(deltaColumns.joined(separator: ", ")))
            SELECT date_trunc('hour', started_at, 'UTC'), tenant, model, accelerator, coalesce(pool, ''),
                   count(*), count(*) FILTER (WHERE status = 'error'), coalesce(sum(gpu_seconds), 0), sum(input_tokens),
                   sum(output_tokens), coalesce(sum(cached_input_tokens), 0)
            FROM \(rows) GROUP BY 1, 2, 3, 4, 5
        ), versions AS (
            INSERT INTO pool_day_versions AS v (pool, day, version)
            SELECT DISTINCT pool, date_trunc('day', started_at, 'UTC'), 1 FROM \(rows) WHERE pool IS NOT NULL
            ORDER BY 1, 2
            ON CONFLICT (pool, day) DO UPDATE SET version = v.version + 1
        )
        """
    }

    /// The columns an inserting CTE returns for `deltaCTEs`.
    public static let summedColumns = "tenant, request_id, model, accelerator, pool, started_at, status, gpu_seconds, input_tokens, output_tokens, cached_input_tokens"

    /// Tells the guard on `usage_records` (sql/0014) that this transaction writes its summary deltas.
    public static let deltasWritten: PostgresQuery = "SELECT set_config('gpuledger.deltas', 'written', true)"

    static let deltaColumns = ["hour", "tenant", "model", "accelerator", "pool", "requests", "errors", "gpu_seconds",
                               "input_tokens", "output_tokens", "cached_input_tokens"]

    /// The batch's summary deltas into `usage_delta`, in one write (as `copy(_:into:)`).
    func copy(_ deltas: [SummaryDelta], on conn: PostgresConnection) async throws {
        guard !deltas.isEmpty else { return }
        var encoder = CopyTextEncoder()
        encoder.bytes.reserveCapacity(deltas.count * 120)
        for d in deltas { encoder.append(d) }
        let buffer = ByteBuffer(bytes: encoder.bytes)
        try await withSpan("COPY usage_delta", ofKind: .client) { span in
            span.attributes["db.system"] = "postgresql"
            span.attributes["gpuledger.rows"] = deltas.count
            try await conn.copyFrom(table: "usage_delta", columns: Self.deltaColumns, logger: logger) { writer in
                try await writer.write(buffer)
            }
        }
    }

    /// Bumps the version of each pool-day the batch touches (the idle cache's and the token share
    /// cache's staleness check), in key order so that concurrent batches lock rows in one order.
    func bump(_ poolDays: [(pool: String, day: Timestamp)], on conn: PostgresConnection) async throws {
        guard !poolDays.isEmpty else { return }
        let pools = poolDays.map(\.pool), days = poolDays.map(\.day.rfc3339)
        try await conn.query("""
            INSERT INTO pool_day_versions AS v (pool, day, version)
            SELECT pool, day::timestamptz, 1 FROM unnest(\(pools)::text[], \(days)::text[]) AS u(pool, day)
            ON CONFLICT (pool, day) DO UPDATE SET version = v.version + 1
            """, logger: logger)
    }

    /// The records in PostgreSQL's COPY text format, in `columns` order (for the benchmark's `\copy`).
    public static func copyText(_ records: [UsageRecord]) -> [UInt8] {
        var encoder = CopyTextEncoder()
        for r in records { encoder.append(r, ordinal: nil) }
        return encoder.bytes
    }

    public static var columnList: String { columns.joined(separator: ", ") }

    /// Folds the summary deltas that ingest appended (`usage_delta`) into the hourly, daily, fleet
    /// and pool-hour summaries: the deltas of even and odd days at once, each part in its own
    /// transaction on its own connection (`usage_fold_part` in `sql/0019`: the parts touch disjoint
    /// summary rows, so on two cores a backfill's fold takes about half as long); the number of
    /// delta rows folded, 0 when there were none or other sessions were folding. Reports are exact
    /// either way: they read the summaries plus the deltas not folded yet.
    ///
    /// A fold that moved rows vacuums `usage_delta` right after: every report scans it, and a
    /// second's deltas deleted every second would otherwise pile up as dead rows until autovacuum
    /// came by (its naptime is a minute): that doubled the cost report by model and accelerator
    /// (4 ms in process at 10 million records, 8 ms without the vacuum).
    public func foldSummaries() async throws -> Int64 {
        async let even = foldPart(0)
        async let odd = foldPart(1)
        let n = try await even + odd
        if n > 0 {
            _ = try await db.withConnection { [logger] conn in try await conn.query("VACUUM (SKIP_LOCKED) usage_delta", logger: logger) }
        }
        return n
    }

    private func foldPart(_ part: Int32) async throws -> Int64 {
        try await db.withConnection { [logger] conn in
            var n: Int64 = 0
            for try await folded in try await conn.query("SELECT usage_fold_part(\(part))", logger: logger).decode(Int64.self) { n = folded }
            return n
        }
    }

    /// How many records are stored (for tests and the benchmark).
    public func count() async throws -> Int {
        try await db.withConnection { [logger] conn in
            var n = 0
            for try await c in try await conn.query("SELECT count(*)::int FROM usage_records", logger: logger).decode(Int.self) { n = c }
            return n
        }
    }
}

/// One record as a line of PostgreSQL's COPY text format (tab-separated, `\N` for NULL).
struct CopyTextEncoder {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(512) }

    mutating func append(_ r: UsageRecord, ordinal: Int?) {
        text(r.tenant); tab()
        text(r.requestID); tab()
        text(r.model); tab()
        text(r.accelerator); tab()
        optional(r.pool); tab()
        r.startedAt.append(to: &bytes, separator: UInt8(ascii: " "), zone: "+00"); tab()
        if let g = r.gpuSeconds { bytes.append(contentsOf: g.utf8) } else { null() }; tab()
        integer(r.inputTokens); tab()
        integer(r.outputTokens); tab()
        if let c = r.cachedInputTokens { integer(c) } else { null() }; tab()
        double(r.ttftMs); tab()
        double(r.tpotMs); tab()
        double(r.e2eMs); tab()
        double(r.queueMs); tab()
        bytes.append(contentsOf: r.status.rawValue.utf8); tab()
        optional(r.errorType); tab()
        if r.labels.isEmpty { null() } else { labels(r.labels) }
        if let ordinal { tab(); integer(Int64(ordinal)) }
        bytes.append(0x0A)
    }

    /// Each hour's text, once per batch (a batch's delta rows share a few hundred hours).
    var hourTexts: [Int64: [UInt8]] = [:]

    /// One `usage_delta` row, in `UsageStore.deltaColumns` order.
    mutating func append(_ d: SummaryDelta) {
        if let text = hourTexts[d.hour.microseconds] {
            bytes.append(contentsOf: text)
        } else {
            var text: [UInt8] = []
            d.hour.append(to: &text, separator: UInt8(ascii: " "), zone: "+00")
            hourTexts[d.hour.microseconds] = text
            bytes.append(contentsOf: text)
        }
        tab()
        text(d.tenant); tab()
        text(d.model); tab()
        text(d.accelerator); tab()
        text(d.pool); tab()
        integer(d.requests); tab()
        integer(d.errors); tab()
        bytes.append(contentsOf: d.gpuSeconds.utf8); tab()
        integer(d.inputTokens); tab()
        integer(d.outputTokens); tab()
        integer(d.cachedInputTokens)
        bytes.append(0x0A)
    }

    mutating func tab() { bytes.append(0x09) }
    mutating func null() { bytes.append(contentsOf: [92, UInt8(ascii: "N")]) }

    /// Decimal digits without going through a String (this runs several times per record).
    mutating func integer(_ v: Int64) {
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        if m < 10 { bytes.append(48 + UInt8(m)); return }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes of scratch, enough for 20 digits
        withUnsafeMutableBytes(of: &digits) { buf in
            var i = buf.count
            while m > 0 {
                i -= 1
                buf[i] = 48 + UInt8(m % 10)
                m /= 10
            }
            bytes.append(contentsOf: buf[i...])
        }
    }

    mutating func double(_ v: Double?) {
        guard let v else { null(); return }
        if v == v.rounded(.towardZero), abs(v) < 1e15 {
            integer(Int64(v)) // whole milliseconds, the usual case
        } else {
            bytes.append(contentsOf: v.description.utf8)
        }
    }

    /// The labels as a JSON object, escaped for COPY, written in place.
    mutating func labels(_ labels: [UsageRecord.Label]) {
        bytes.append(UInt8(ascii: "{"))
        for (i, label) in labels.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            jsonString(label.key)
            bytes.append(UInt8(ascii: ":"))
            jsonString(label.value)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// A JSON string literal, then COPY-escaped: JSON's backslashes are doubled for COPY.
    mutating func jsonString(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [92, 92, 34])
            case 92: bytes.append(contentsOf: [92, 92, 92, 92])
            case 0x0A: bytes.append(contentsOf: [92, 92, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [92, 92, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [92, 92, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [92, 92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func optional(_ s: String?) {
        if let s { text(s) } else { null() }
    }

    /// Escapes backslash, tab, newline and carriage return, as COPY's text format requires. A
    /// value with none of them (nearly every one) is appended whole: byte by byte through the
    /// escape switch this was 9% of the service's CPU in an ingest profile.
    mutating func text(_ s: String) {
        var s = s
        let clean = s.withUTF8 { u in
            for b in u where b == 92 || (b < 14 && (b == 0x09 || b == 0x0A || b == 0x0D)) { return false }
            bytes.append(contentsOf: u)
            return true
        }
        if clean { return }
        for b in s.utf8 {
            switch b {
            case 92: bytes.append(92); bytes.append(92)
            case 0x09: bytes.append(92); bytes.append(UInt8(ascii: "t"))
            case 0x0A: bytes.append(92); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(92); bytes.append(UInt8(ascii: "r"))
            default: bytes.append(b)
            }
        }
    }
}

/// A stored record, as read back.
public struct StoredRecord: Sendable {
    public var record: UsageRecord
    public var ingestedAt: Timestamp
}

extension UsageStore {
    /// The record stored under (tenant, request_id), if any.
    public func find(tenant: String, requestID: String) async throws -> StoredRecord? {
        try await db.withConnection { [logger] conn in
            let rows = try await conn.query("""
                SELECT request_id, tenant, model, accelerator, pool,
                       (extract(epoch FROM started_at) * 1000000)::bigint, gpu_seconds::text,
                       input_tokens, output_tokens, cached_input_tokens, ttft_ms, tpot_ms, e2e_ms,
                       status, error_type, labels::text, (extract(epoch FROM ingested_at) * 1000000)::bigint, queue_ms
                FROM usage_records WHERE tenant = \(tenant) AND request_id = \(requestID)
                """, logger: logger)
            for try await row in rows {
                let c = row.makeRandomAccess()
                var labels: [UsageRecord.Label] = []
                if let text = try c[15].decode(String?.self) {
                    labels = LabelsText.decode(text)
                }
                let record = UsageRecord(
                    requestID: try c[0].decode(String.self), tenant: try c[1].decode(String.self),
                    model: try c[2].decode(String.self), accelerator: try c[3].decode(String.self),
                    pool: try c[4].decode(String?.self),
                    startedAt: Timestamp(microseconds: try c[5].decode(Int64.self)),
                    gpuSeconds: try c[6].decode(String?.self),
                    inputTokens: try c[7].decode(Int64.self), outputTokens: try c[8].decode(Int64.self),
                    cachedInputTokens: try c[9].decode(Int64?.self),
                    ttftMs: try c[10].decode(Double?.self), tpotMs: try c[11].decode(Double?.self), e2eMs: try c[12].decode(Double?.self),
                    queueMs: try c[17].decode(Double?.self),
                    status: UsageRecord.Status(rawValue: try c[13].decode(String.self)) ?? .ok,
                    errorType: try c[14].decode(String?.self), labels: labels)
                return StoredRecord(record: record, ingestedAt: Timestamp(microseconds: try c[16].decode(Int64.self)))
            }
            return nil
        }
    }
}

/// Reads the `labels` jsonb text back. jsonb keeps no key order, so labels come back sorted by key.
enum LabelsText {
    static func decode(_ text: String) -> [UsageRecord.Label] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String] else { return [] }
        return object.keys.sorted().map { UsageRecord.Label($0, object[$0]!) }
    }
}

extension UsageStore {
    /// Deletes up to `limit` records that started before `cutoff`; returns how many. Small
    /// batches keep each transaction short, so ingest goes on while old data is removed.
    public func deleteBatch(startedBefore cutoff: Timestamp, limit: Int) async throws -> Int {
        let micros = cutoff.microseconds
        return try await db.withConnection { [logger] conn in
            let rows = try await conn.query("""
                WITH gone AS (
                    DELETE FROM usage_records WHERE ctid IN (
                        SELECT ctid FROM usage_records
                        WHERE started_at < TIMESTAMPTZ 'epoch' + \(micros) * INTERVAL '1 microsecond' LIMIT \(limit))
                    RETURNING 1
                ) SELECT count(*)::int FROM gone
                """, logger: logger)
            var n = 0
            for try await c in rows.decode(Int.self) { n = c }
            return n
        }
    }
}
