import ArgumentParser
import Foundation
import GPULedgerCore
import GPULedgerStore

struct PeriodCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "period",
        abstract: "Close a finished month as an invoice; reopen one closed by mistake.",
        subcommands: [PeriodClose.self, PeriodReopen.self])
}

struct PeriodClose: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "close",
        abstract: "Close a finished month: its chargeback is frozen as an invoice (POST /v1/periods/MONTH/close).",
        discussion: """
            Asks the running service with an admin or finance key. Prints the invoice id and total.
            Exit status: 0 closed, 1 refused (closed already, or not over yet), 2 on an error
            (service unreachable, key refused, bad month).
            """)

    @Argument(help: "The month, YYYY-MM.") var month: String
    @OptionGroup var service: ServiceOptions

    func run() async throws {
        guard Period.parse(month) != nil else {
            note("gpuledger period close: \(month) is not a month (YYYY-MM, such as 2026-10)")
            throw ExitCode(2)
        }
        let reply: ServiceClient.Reply
        do {
            reply = try await ServiceClient(service).send("POST", "/v1/periods/\(month)/close")
        } catch {
            note("gpuledger period close: \(error)")
            throw ExitCode(2)
        }
        switch reply.status {
        case 201:
            let answer = (try? JSONSerialization.jsonObject(with: reply.data)) as? [String: Any] ?? [:]
            print("closed \(answer["period"] as? String ?? month): invoice \(answer["invoice_id"] as? String ?? "?"), total $\(answer["total_cost_usd"] as? String ?? "?")")
        case 409, 422:
            note("gpuledger period close: \(reply.errorMessage)")
            throw ExitCode(1)
        default:
            note("gpuledger period close: HTTP \(reply.status): \(reply.errorMessage)")
            throw ExitCode(2)
        }
    }
}

struct PeriodReopen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reopen",
        abstract: "Withdraw a closed month's invoice (an operator's repair; not in the API).",
        discussion: """
            Works on the database directly (like migrate and keys). The withdrawn invoice is kept in
            the append-only table period_reopenings with the time, the database user and --reason;
            the month is open again, and its figures follow the ledger until it is closed anew
            (with a new invoice id). Exit status: 0 reopened, 1 the month was not closed, 2 on an error.
            """)

    @Argument(help: "The month, YYYY-MM.") var month: String
    @Option(help: "Why the close is withdrawn (recorded).") var reason: String
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        guard Period.parse(month) != nil else { throw ValidationError("\(month) is not a month (YYYY-MM, such as 2026-10)") }
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must say why") }
    }

    func run() async throws {
        let logger = log.bootstrap()
        let period = Period.parse(month)!
        let reason = self.reason
        let reopened = try await database.withDatabase(logger: logger) { db in
            try await PeriodStore(database: db).reopen(period, reason: reason)
        }
        guard reopened else {
            note("gpuledger period reopen: \(month) is not closed")
            throw ExitCode(1)
        }
        logger.notice("month reopened", metadata: ["period": "\(month)", "reason": "\(reason)"])
        print("reopened \(month); its withdrawn invoice is in period_reopenings")
    }
}
