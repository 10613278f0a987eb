import ArgumentParser
import Foundation
import GPULedgerCore
import GPULedgerStore

struct Pricing: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Rate cards.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check rate cards offline.",
            discussion: "Prints every problem as file:line:column and exits 1 when there is one; exit 2 when the folder cannot be read.")

        @Argument(help: "Folder of rate cards (default: GPULEDGER_PRICING, else ./pricing).") var directory: String?

        func run() throws {
            let dir = directory ?? environment("GPULEDGER_PRICING") ?? "pricing"
            guard let loaded = try RateCardFiles.load(directory: dir) else {
                note("\(dir): no such folder")
                throw ExitCode(2)
            }
            for error in loaded.errors { print(error.description) }
            if !loaded.errors.isEmpty {
                print("\(loaded.refusedFiles.count) file(s) refused")
                throw ExitCode(1)
            }
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".csv") && $0 != RateCards.defaultsFile }.count) ?? 0
            print("\(dir): \(files) rate cards, \(loaded.rates.count) rates, \(loaded.accelerators.count) accelerators, \(loaded.defaults.count) defaults: ok")
        }
    }
}
