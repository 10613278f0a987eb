import Foundation
import GPULedgerOTLP
import GPULedgerTestSupport
import Testing

/// `POST /v1/traces`' decoding path under seeded random mutations of the committed corpus (a
/// bounded run here; `gpuledger-fuzz-otlp --seconds N` runs it for minutes).
@Suite struct OTLPFuzzTests {
    static let corpusDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/otlp-corpus").path

    @Test func mutatedExportsNeverCrashAndMostAreRefused() throws {
        let corpus = try OTLPFuzz.corpus(directory: Self.corpusDirectory)
        #expect(corpus.count >= 3)
        let out = OTLPFuzz.run(corpus: corpus, seed: 20261201, rounds: 3000)
        #expect(out.rounds == 3000)
        // Both ways out are exercised: mutations the decoders refuse, and ones that decode and
        // go on into the mapping and the record parser.
        #expect(out.refused > 300, "refused \(out.refused)")
        #expect(out.decoded > 100, "decoded \(out.decoded)")
        #expect(out.records > 0, "records \(out.records)")
    }

    /// The corpus is what the fuzzer starts from: real exports (the Python SDK's encoder) that
    /// decode and map to records as they are.
    @Test func theCorpusItselfDecodesAndMapsToRecords() throws {
        let mapper = SpanMapper(fallbacks: .init(accelerator: "H100"), boundTenant: nil, poolAccelerators: [:])
        for (name, bytes) in try OTLPFuzz.corpus(directory: Self.corpusDirectory) {
            let request = try TraceExport.decode(Data(bytes), as: name.hasSuffix(".json") ? .json : .protobuf)
            let mapped = mapper.map(request)
            #expect(!mapped.candidates.isEmpty && mapped.rejected.isEmpty, "\(name): \(mapped.rejected)")
        }
    }
}
