import Foundation
import GPULedgerCore
import Logging
import Synchronization

/// One JSON object per line on standard error: `time`, `level`, `message`, `logger`, then the
/// metadata (request id, method, route, status, duration, …), for log pipelines.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    static let output = Mutex(())

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let (level, message, source) = (event.level, event.message, event.source)
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(contentsOf: "{\"time\":".utf8)
        JSONText.appendQuoted(Self.now(), to: &out)
        out.append(contentsOf: ",\"level\":".utf8)
        JSONText.appendQuoted(level.rawValue, to: &out)
        out.append(contentsOf: ",\"message\":".utf8)
        JSONText.appendQuoted(message.description, to: &out)
        out.append(contentsOf: ",\"logger\":".utf8)
        JSONText.appendQuoted(source, to: &out)
        for key in fields.keys.sorted() where !["time", "level", "message", "logger"].contains(key) {
            out.append(UInt8(ascii: ","))
            JSONText.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONText.appendQuoted(Self.text(fields[key]!), to: &out)
        }
        out.append(contentsOf: "}\n".utf8)
        Self.output.withLock { _ in
            out.withUnsafeBytes { buf in
                var offset = 0
                while offset < buf.count {
                    let n = write(STDERR_FILENO, buf.baseAddress! + offset, buf.count - offset)
                    if n <= 0 { if errno == EINTR { continue }; return }
                    offset += n
                }
            }
        }
    }

    static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        default: return value.description
        }
    }

    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(microseconds: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000).rfc3339
    }
}
