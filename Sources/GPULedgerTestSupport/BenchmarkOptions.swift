import Foundation

/// `--name VALUE` from the command line of a benchmark program, or `fallback`.
public func option(_ name: String, _ fallback: Int) -> Int {
    stringOption(name, "").isEmpty ? fallback : Int(stringOption(name, "")) ?? fallback
}

/// `--name VALUE` from the command line of a benchmark program, or `fallback`.
public func stringOption(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count { return args[i + 1] }
    return fallback
}
