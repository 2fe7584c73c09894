import Foundation

/// Where Redis is and how to log in, from a URL:
/// `redis://[[user]:password@]host[:port][/db]`. The password never appears
/// in `description` (which is what logs and errors print).
public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    /// How long one command may wait for its reply before the connection is
    /// dropped (blocking reads add their own wait to this).
    public var commandTimeout: Duration
    /// How long a connection attempt may take.
    public var connectTimeout: Duration

    public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil,
                database: Int = 0, commandTimeout: Duration = .seconds(10), connectTimeout: Duration = .seconds(5)) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.commandTimeout = commandTimeout
        self.connectTimeout = connectTimeout
    }

    /// Parses a `redis://` URL; the error names what is wrong and what a
    /// good URL looks like.
    public init(url text: String) throws(RedisError) {
        let example = "expected redis://[:password@]host[:port][/db], e.g. redis://127.0.0.1:6379/0"
        if text.hasPrefix("rediss://") {
            throw RedisError.configuration("redis URL \(Self.redacted(text)): TLS (rediss://) is not supported yet; use redis:// on a private network or a TLS tunnel")
        }
        guard text.hasPrefix("redis://"), let components = URLComponents(string: text), let host = components.host, !host.isEmpty else {
            throw RedisError.configuration("redis URL \(Self.redacted(text)) is not one: \(example)")
        }
        self.init(host: host)
        if let port = components.port {
            guard (1...65535).contains(port) else { throw RedisError.configuration("redis URL \(Self.redacted(text)): port \(port) is out of range") }
            self.port = port
        }
        if let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty { username = user }
        if let secret = components.percentEncodedPassword.flatMap({ $0.removingPercentEncoding }), !secret.isEmpty { password = secret }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let db = Int(path), db >= 0 else { throw RedisError.configuration("redis URL \(Self.redacted(text)): database '\(path)' is not a number; \(example)") }
            database = db
        }
        if components.query != nil || components.fragment != nil {
            throw RedisError.configuration("redis URL \(Self.redacted(text)) has a query or fragment; \(example)")
        }
    }

    public var description: String {
        let login = password == nil ? (username.map { "\($0)@" } ?? "") : "\(username ?? ""):***@"
        return "redis://\(login)\(host):\(port)/\(database)"
    }

    /// The URL with anything between `//` and `@` hidden.
    static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text.range(of: "@", options: .backwards), scheme.upperBound <= at.lowerBound else {
            return text
        }
        return String(text[..<scheme.upperBound]) + "***" + String(text[at.lowerBound...])
    }
}

extension Duration {
    /// Whole milliseconds, as Redis takes timeouts, leases and idle times.
    public var redisMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
