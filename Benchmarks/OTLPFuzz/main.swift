// Fuzzes POST /v1/traces' decoding path for a while: not a test, it prints what it did.
//
//   swift build -c release --product gpuledger-fuzz-otlp && .build/release/gpuledger-fuzz-otlp [--seconds 180] [--seed N]
//
// Seeded random mutations of the committed corpus (Tests/Fuzz/otlp-corpus) through the
// protobuf and OTLP JSON decoders, the span mapping and the record parser (GPULedgerTestSupport's
// OTLPFuzz). A crash or a hang is the finding; rerun with the printed seed to replay it.
import Foundation
import GPULedgerTestSupport

checkArguments(program: "gpuledger-fuzz-otlp", source: "Benchmarks/OTLPFuzz/main.swift",
               values: ["--seconds", "--seed", "--corpus"])

let seconds = option("--seconds", 180)
let seed = UInt64(option("--seed", Int(UInt32(truncatingIfNeeded: UInt64(Date().timeIntervalSince1970 * 1000)))))
let corpus = try OTLPFuzz.corpus(directory: stringOption("--corpus", "Tests/Fuzz/otlp-corpus"))
print("fuzzing for \(seconds) s from \(corpus.count) corpus files, seed \(seed)")
let started = ContinuousClock.now
let out = OTLPFuzz.run(corpus: corpus, seed: seed, until: started + .seconds(seconds))
let elapsed = ContinuousClock.now - started
let perSecond = Double(out.rounds) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
print("\(out.rounds) inputs (\(Int(perSecond))/s): \(out.refused) refused as not OTLP, \(out.decoded) decoded, \(out.records) records, \(out.rejectedSpans) spans rejected; no crash, no hang")
