import Foundation
import PostgresNIO

/// Where the database is: `DATABASE_URL`, or the embedded cluster's socket.
public enum DatabaseURL {
    /// Parses `postgres://user:password@host:port/database?sslmode=disable|prefer|require`.
    /// A Unix socket is given libpq's way: `postgres:///database?host=/run/postgresql`.
    public static func configuration(from url: String) throws -> PostgresClient.Configuration {
        guard let c = URLComponents(string: url), let scheme = c.scheme, scheme == "postgres" || scheme == "postgresql" else {
            throw StoreError.configuration("DATABASE_URL must look like postgres://user:password@host:5432/database (got a value that is not such a URL)")
        }
        let query = Dictionary((c.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, b in b })
        let user = c.user.flatMap { $0.removingPercentEncoding } ?? query["user"] ?? "postgres"
        let password = c.password.flatMap { $0.removingPercentEncoding } ?? query["password"]
        var database = c.path
        if database.hasPrefix("/") { database.removeFirst() }
        database = database.removingPercentEncoding ?? database
        if database.isEmpty { database = query["dbname"] ?? user }
        let socketDir = query["host"].flatMap { $0.hasPrefix("/") ? $0 : nil }
            ?? (c.host.flatMap { $0.removingPercentEncoding }.flatMap { $0.hasPrefix("/") ? $0 : nil })
        if let socketDir {
            let port = c.port ?? Int(query["port"] ?? "") ?? 5432
            return .init(unixSocketPath: "\(socketDir)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        }
        guard let host = c.host, !host.isEmpty else {
            throw StoreError.configuration("DATABASE_URL has no host: postgres://user:password@HOST:5432/database")
        }
        let tls: PostgresClient.Configuration.TLS
        switch query["sslmode"] ?? "prefer" {
        case "disable": tls = .disable
        case "allow", "prefer": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
        case let other:
            throw StoreError.configuration("DATABASE_URL sslmode \(other) is not one of disable, prefer, require, verify-full")
        }
        return .init(host: host, port: c.port ?? 5432, username: user, password: password, database: database, tls: tls)
    }
}

extension PostgresClient.Configuration {
    /// The settings gpuledger uses on top of PostgresNIO's defaults: fail fast when the database
    /// is gone, so the API can answer 503 instead of hanging.
    public mutating func applyServiceDefaults(maxConnections: Int = 8) {
        options.connectTimeout = .seconds(3)
        options.maximumConnections = maxConnections
        options.minimumConnections = 0
    }
}
