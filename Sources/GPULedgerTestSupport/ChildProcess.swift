import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A program started by a test (the built `gpuledger` binary), with its output in a file.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let outputPath: String
    private var exitStatus: Int32?

    /// The `gpuledger` executable built beside the tests.
    public static var gpuledgerBinary: String {
        // Tests/<target>/… is not where we are; the package root is three levels above this file.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for candidate in [".build/debug/gpuledger", ".build/release/gpuledger"] {
            let path = root.appendingPathComponent(candidate).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return root.appendingPathComponent(".build/debug/gpuledger").path
    }

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stdinPath: String? = nil) throws {
        outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("gpuledger-child-\(UUID().uuidString).log").path
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = [executable] + arguments
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, cArgs, cEnv)
        guard rc == 0 else { throw NSError(domain: "spawn", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "cannot start \(executable): \(String(cString: strerror(rc)))"]) }
        self.pid = pid
    }

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Whether it has exited (reaps it if so).
    public var hasExited: Bool {
        if exitStatus != nil { return true }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return true
        }
        return false
    }

    /// Waits for the exit, checking every 20 ms, at most `timeout`; returns the exit status.
    @discardableResult
    public func wait(timeout: Duration = .seconds(120)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while !hasExited {
            guard ContinuousClock.now < deadline else {
                kill(pid, SIGKILL)
                throw NSError(domain: "child", code: 1, userInfo: [NSLocalizedDescriptionKey: "process did not exit in time; output:\n\(output)"])
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return exitStatus!
    }

    public func signal(_ sig: Int32) { kill(pid, sig) }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(atPath: outputPath)
    }
}

/// Waits until `condition` holds, checking every 50 ms, for at most `timeout`.
/// For conditions in another process (a server answering, rows arriving), not as a delay.
public func waitUntil(timeout: Duration = .seconds(60), _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            throw NSError(domain: "wait", code: 1, userInfo: [NSLocalizedDescriptionKey: "timed out waiting for \(what)"])
        }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A plain HTTP call for tests that talk to a real server process: its status and body, or nil
/// when it could not be made or did not finish within 10 seconds. (AsyncHTTPClient, whose deadline
/// and cancellation always end the call; Foundation's URLSession on Linux gives no such promise.)
public func httpStatus(_ url: String, method: String = "GET", key: String? = nil, body: String? = nil, contentType: String = "application/json",
                       headers extra: [String: String] = [:]) async -> (Int, String)? {
    await httpCall(url, method: method, key: key, body: body, contentType: contentType, headers: extra).map { ($0.status, $0.body) }
}

/// `httpStatus` with the response's headers.
public func httpCall(_ url: String, method: String = "GET", key: String? = nil, body: String? = nil, contentType: String = "application/json",
                     headers extra: [String: String] = [:]) async -> (status: Int, body: String, headers: HTTPHeaders)? {
    var request = HTTPClientRequest(url: url)
    request.method = HTTPMethod(rawValue: method)
    if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
    for (name, value) in extra { request.headers.add(name: name, value: value) }
    if let body {
        request.body = .bytes(ByteBuffer(string: body))
        request.headers.add(name: "Content-Type", value: contentType)
    }
    do {
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return (Int(response.status.code), String(buffer: bytes), response.headers)
    } catch {
        return nil
    }
}

/// A POST of raw bytes (a protobuf body): the status and the answer's bytes, or nil.
public func httpPost(_ url: String, key: String?, bytes: [UInt8], contentType: String) async -> (status: Int, body: [UInt8])? {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
    request.headers.add(name: "Content-Type", value: contentType)
    request.body = .bytes(ByteBuffer(bytes: bytes))
    do {
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return (Int(response.status.code), Array(body.readableBytesView))
    } catch {
        return nil
    }
}
