import Foundation

/// Runs external programs (initdb, pg_ctl) and captures what they print.
enum Command {
    struct Result {
        var status: Int32
        var output: String
    }

    /// Runs `executable` with `arguments`, optionally as another user (through `setpriv`), and waits.
    ///
    /// posix_spawn and waitpid, not Foundation's `Process`: `pg_ctl start` leaves a daemon behind,
    /// and `Process` was seen never to notice that pg_ctl itself had exited. Output goes to a
    /// temporary file rather than a pipe, which the daemon could hold open.
    static func run(_ executable: String, _ arguments: [String], asUser user: SystemUser? = nil,
                    environment: [String: String] = [:]) throws -> Result {
        var argv: [String]
        if let user {
            argv = [try locate("setpriv", hint: "util-linux"), "--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", "--", executable] + arguments
        } else {
            argv = [executable] + arguments
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        if let user { env["HOME"] = user.home; env["USER"] = user.name; env["LOGNAME"] = user.name }
        let outputPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("gpuledger-cmd-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).log").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, cEnv)
        guard rc == 0 else {
            throw StoreError.configuration("cannot run \(argv[0]): \(String(cString: strerror(rc)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw StoreError.configuration("waiting for \(argv[0]) failed: \(String(cString: strerror(errno)))") }
        }
        let exitCode: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let data = FileManager.default.contents(atPath: outputPath) ?? Data()
        return Result(status: exitCode, output: String(decoding: data, as: UTF8.self))
    }

    /// Finds a program on PATH or in the usual system folders.
    static func locate(_ name: String, hint: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":") + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw StoreError.configuration("\(name) was not found on PATH; install the Debian package \(hint)")
    }
}

/// A local account, for running PostgreSQL unprivileged when gpuledger runs as root.
struct SystemUser {
    var name: String
    var uid: UInt32
    var gid: UInt32
    var home: String

    static func named(_ name: String) -> SystemUser? {
        guard let pw = getpwnam(name) else { return nil }
        return SystemUser(name: name, uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid,
                          home: String(cString: pw.pointee.pw_dir))
    }

    /// The account PostgreSQL runs as when we are root: `GPULEDGER_PG_USER`, else Debian's
    /// `postgres` (the PostgreSQL packages create it), else `nobody`.
    static func unprivileged() throws -> SystemUser {
        if let wanted = ProcessInfo.processInfo.environment["GPULEDGER_PG_USER"], !wanted.isEmpty {
            guard let u = named(wanted) else {
                throw StoreError.configuration("GPULEDGER_PG_USER=\(wanted) names no local user")
            }
            return u
        }
        if let u = named("postgres") { return u }
        if let u = named("nobody") { return u }
        throw StoreError.configuration("running as root, but there is no unprivileged user (postgres or nobody) to run PostgreSQL as; set GPULEDGER_PG_USER")
    }
}
