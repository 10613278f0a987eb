import Foundation
import GPULedgerCore
import GPULedgerOTLP

/// A seeded random-mutation fuzzer for `POST /v1/traces`' decoding path: each round mutates one
/// export of the corpus (bit flips, random bytes, inserted, deleted, duplicated and spliced runs,
/// truncation; several per round) and runs it through everything the endpoint does before the
/// database: `TraceExport.decode` (protobuf, and OTLP JSON for JSON inputs), `SpanMapper.map`
/// and `RecordParser` on each span's record. It passes when nothing crashes or hangs; it counts
/// what was refused and what got through. Used by `OTLPFuzzTests` (a bounded run in the suite)
/// and `gpuledger-fuzz-otlp` (minutes).
public enum OTLPFuzz {
    public struct Outcome: Sendable {
        public var rounds = 0
        public var refused = 0
        public var decoded = 0
        public var records = 0
        public var rejectedSpans = 0
    }

    /// The committed corpus: `Tests/Fuzz/otlp-corpus` of the repository.
    public static func corpus(directory: String) throws -> [(name: String, bytes: [UInt8])] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted().map { name in
            (name, Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))))
        }
    }

    /// Runs `rounds` rounds, or until `deadline` (whichever is given and comes first).
    public static func run(corpus: [(name: String, bytes: [UInt8])], seed: UInt64, rounds: Int? = nil, until deadline: ContinuousClock.Instant? = nil) -> Outcome {
        precondition(!corpus.isEmpty, "an empty corpus")
        var rng = SplitMix(seed: seed)
        var out = Outcome()
        let mapper = SpanMapper(fallbacks: .init(accelerator: "H100", tenantAttribute: "user"), boundTenant: nil, poolAccelerators: ["p1": "L4"])
        let parser = RecordParser(now: Timestamp(secondsSince1970: 1_780_000_000), maxTokens: RecordParser.serviceMaxTokens, tokenPools: ["p1"])
        while rounds.map({ out.rounds < $0 }) ?? true, deadline.map({ ContinuousClock.now < $0 }) ?? true {
            out.rounds += 1
            let (name, original) = corpus[Int(rng.next() % UInt64(corpus.count))]
            var bytes = original
            for _ in 0..<(1 + rng.next() % 4) { mutate(&bytes, &rng, corpus) }
            let encoding: OTLPEncoding = name.hasSuffix(".json") && rng.next() % 4 != 0 ? .json : .protobuf
            guard let request = try? TraceExport.decode(Data(bytes), as: encoding) else {
                out.refused += 1
                continue
            }
            out.decoded += 1
            let mapped = mapper.map(request)
            out.rejectedSpans += mapped.rejected.count
            for candidate in mapped.candidates {
                if let batch = try? parser.parse(candidate.json, format: .ndjson), batch.errors.isEmpty { out.records += batch.records.count } else { out.rejectedSpans += 1 }
            }
        }
        return out
    }

    static func mutate(_ b: inout [UInt8], _ rng: inout SplitMix, _ corpus: [(name: String, bytes: [UInt8])]) {
        func at(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }
        switch rng.next() % 8 {
        case 0 where !b.isEmpty: b[at(b.count)] ^= 1 << UInt8(rng.next() % 8)
        case 1 where !b.isEmpty: b[at(b.count)] = UInt8(truncatingIfNeeded: rng.next())
        case 2: b.insert(contentsOf: (0..<(1 + at(8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at(b.count + 1))
        case 3 where !b.isEmpty:
            let i = at(b.count)
            b.removeSubrange(i..<min(b.count, i + 1 + at(16)))
        case 4 where !b.isEmpty:
            let i = at(b.count), n = min(b.count - i, 1 + at(64))
            b.insert(contentsOf: b[i..<(i + n)], at: at(b.count + 1))
        case 5: b = Array(b.prefix(at(b.count + 1)))
        case 6:
            let other = corpus[at(corpus.count)].bytes
            let i = at(other.count)
            b.insert(contentsOf: other[i..<min(other.count, i + 1 + at(128))], at: at(b.count + 1))
        default:
            // An "interesting" value where a varint or a length may be: 0, 0x7f, 0x80, 0xff.
            if !b.isEmpty { b[at(b.count)] = [0, 0x7f, 0x80, 0xff][at(4)] }
        }
    }
}
