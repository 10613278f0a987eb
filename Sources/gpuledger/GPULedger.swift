import ArgumentParser
import Foundation
import Logging

@main
struct GPULedger: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpuledger",
        abstract: "What every LLM request, token, tenant and GPU costs.",
        discussion: "Configuration comes from flags, then the environment, then defaults.",
        subcommands: [Serve.self, Migrate.self, Keys.self, Ingest.self, BudgetCommand.self, PeriodCommand.self, Pricing.self, Prune.self]
    )
}

/// Log options shared by the commands that log.
struct LogOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error or critical (GPULEDGER_LOG_LEVEL).")
    var logLevel: String?

    @Option(help: "json or text (GPULEDGER_LOG_FORMAT; default: text on a terminal, else json).")
    var logFormat: String?

    func bootstrap() -> Logger {
        let levelName = logLevel ?? ProcessInfo.processInfo.environment["GPULEDGER_LOG_LEVEL"] ?? "info"
        let level = Logger.Level(rawValue: levelName) ?? .info
        let format = logFormat ?? environment("GPULEDGER_LOG_FORMAT") ?? (isatty(STDERR_FILENO) == 1 ? "text" : "json")
        LoggingSystem.bootstrap { label in
            if format == "json" { return JSONLogHandler(label: label, logLevel: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "gpuledger")
        logger.logLevel = level
        return logger
    }
}

func environment(_ name: String) -> String? {
    guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else { return nil }
    return v
}

/// Prints to standard error.
func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
