import Foundation

/// Checks a benchmark program's command line before it starts anything. `--help` (or `-h`)
/// prints the options and exits 0. An argument that is not one of `values` (each followed by its
/// value) or `flags` exits 2, naming it. Without this check a typo ran the whole benchmark with a
/// default, and `--help | head` started a 10 M-record load whose service outlived the pipe.
public func checkArguments(program: String, source: String, values: [String], flags: [String] = []) {
    var args = CommandLine.arguments.dropFirst()
    if args.contains("--help") || args.contains("-h") {
        let options = values.map { "[\($0) VALUE]" } + flags.map { "[\($0)]" }
        print("usage: \(program) \(options.joined(separator: " "))\nwhat each does and its default: the comment at the top of \(source)")
        exit(0)
    }
    while let arg = args.popFirst() {
        if flags.contains(arg) { continue }
        guard values.contains(arg) else {
            argumentError("\(program): unknown argument \(arg); it takes \((values + flags).joined(separator: ", ")) (--help)")
        }
        guard let value = args.popFirst(), !value.hasPrefix("--") else { argumentError("\(program): \(arg) needs a value") }
    }
}

/// `--name VALUE` from the command line of a benchmark program, or `fallback`; a value that is
/// not a whole number exits 2, naming it.
public func option(_ name: String, _ fallback: Int) -> Int {
    let text = stringOption(name, "")
    guard !text.isEmpty else { return fallback }
    guard let n = Int(text) else { argumentError("\(name) \(text): not a whole number") }
    return n
}

/// `--name VALUE` from the command line of a benchmark program, or `fallback`.
public func stringOption(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count { return args[i + 1] }
    return fallback
}

private func argumentError(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}
