import _ConnectionPoolModule
import Foundation
import PostgresNIO

/// The store's own errors; the API maps them to HTTP statuses in one place.
public enum StoreError: Error, CustomStringConvertible {
    /// The database cannot be reached (down, restarting, refusing connections).
    case unavailable(String)
    /// A setup problem the operator must fix (missing binaries, bad data directory, bad URL).
    case configuration(String)
    /// A migration failed or the schema is not what this build expects.
    case migration(String)
    /// A unique key refused a row (SQLSTATE 23505).
    case uniqueViolation(String)
    /// A text value the database cannot hold (a NUL character, U+0000: SQLSTATE 22021 in text,
    /// 22P05 in jsonb): the client's input, refused before anything was written.
    case unstorableText(String)
    /// Anything else from the database: a bug on our side, not the client's.
    case database(String)

    public var description: String {
        switch self {
        case .unavailable(let m): return "database unavailable: \(m)"
        case .configuration(let m): return m
        case .migration(let m): return "migration failed: \(m)"
        case .uniqueViolation(let m): return "duplicate key: \(m)"
        case .unstorableText(let m): return "text the database cannot store: \(m)"
        case .database(let m): return "database error: \(m)"
        }
    }

    /// Classifies any error thrown by PostgresNIO.
    public static func from(_ error: any Error) -> any Error {
        if error is StoreError { return error }
        if let t = error as? PostgresTransactionError {
            if let e = t.beginError { return from(e) }
            if let e = t.closureError { return from(e) }
            if let e = t.commitError { return from(e) }
            if let e = t.rollbackError { return from(e) }
        }
        if let p = error as? PSQLError {
            switch p.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown:
                return StoreError.unavailable(String(describing: p.code))
            case .server:
                let state = p.serverInfo?[.sqlState] ?? ""
                let message = p.serverInfo?[.message] ?? ""
                // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection exceptions.
                if state.hasPrefix("57P") || state.hasPrefix("08") {
                    return StoreError.unavailable("\(state) \(message)")
                }
                if state == "23505" { return StoreError.uniqueViolation(message) }
                if state == "22021" || state == "22P05" { return StoreError.unstorableText(message) }
                return StoreError.database("\(state) \(message)")
            default:
                return StoreError.database(String(describing: p.code))
            }
        }
        if error is CancellationError { return error }
        // The pool gave up connecting (the database down or refusing connections for a while).
        if let pool = error as? ConnectionPoolError, pool == .connectionCreationCircuitBreakerTripped {
            return StoreError.unavailable("no connection to the database could be made (connection pool circuit breaker)")
        }
        // Connection attempts that fail below PostgresNIO: refused, no such socket, reset, timed out.
        if let io = error as? IOError, Self.connectionErrnos.contains(io.errnoCode) { return StoreError.unavailable(String(describing: io)) }
        if error is NIOConnectionError { return StoreError.unavailable(String(describing: error)) }
        if let channel = error as? ChannelError {
            switch channel {
            case .connectTimeout, .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed:
                return StoreError.unavailable(String(describing: channel))
            default: break
            }
        }
        return error
    }

    /// The errno values of a connection that cannot be made or was lost.
    static let connectionErrnos: Set<Int32> = [ECONNREFUSED, ENOENT, ECONNRESET, ECONNABORTED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, EPIPE]

    /// No connection could be had, or it was lost (a read then goes to the primary instead).
    public var isConnectionFailure: Bool {
        if case .unavailable = self { return true }
        return false
    }

    public var isUniqueViolation: Bool {
        if case .uniqueViolation = self { return true }
        return false
    }
}
