import Foundation

/// Where Redis is and how to log in, from a URL:
/// `redis://[[user]:password@]host[:port][/db]`, or with TLS
/// `rediss://...[?ca=FILE][&cert=FILE&key=FILE]` (the server is verified
/// against the system's roots or the `ca` bundle, host name or IP included;
/// `cert`/`key` answer Redis' request for a client certificate, which it
/// makes by default). The password never appears in `description` (which is
/// what logs and errors print).
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
    /// TLS settings; nil for plain TCP.
    public var tls: TLS?

    /// PEM files for a TLS connection (paths; nil: the system's trust roots, no client certificate).
    public struct TLS: Sendable, Equatable {
        public var caFile: String?
        public var certificateFile: String?
        public var keyFile: String?
        public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
        }
    }

    public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil,
                database: Int = 0, commandTimeout: Duration = .seconds(10), connectTimeout: Duration = .seconds(5), tls: TLS? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.commandTimeout = commandTimeout
        self.connectTimeout = connectTimeout
        self.tls = tls
    }

    /// Parses a `redis://` URL; the error names what is wrong and what a
    /// good URL looks like.
    public init(url text: String) throws(RedisError) {
        let example = "expected redis://[:password@]host[:port][/db] or rediss://... for TLS, e.g. redis://127.0.0.1:6379/0"
        guard text.hasPrefix("redis://") || text.hasPrefix("rediss://"), let components = URLComponents(string: text), let host = components.host, !host.isEmpty else {
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
        if components.fragment != nil {
            throw RedisError.configuration("redis URL \(Self.redacted(text)) has a fragment; \(example)")
        }
        if text.hasPrefix("rediss://") {
            tls = try Self.tls(components.queryItems ?? [], url: Self.redacted(text))
        } else if components.query != nil {
            throw RedisError.configuration("redis URL \(Self.redacted(text)) has a query; only rediss:// takes ?ca=FILE&cert=FILE&key=FILE")
        }
    }

    /// The TLS settings of a `rediss://` URL's query, files checked now
    /// (a typo is a start-up error, not a failed handshake later).
    private static func tls(_ items: [URLQueryItem], url: String) throws(RedisError) -> TLS {
        var tls = TLS()
        for item in items {
            guard ["ca", "cert", "key"].contains(item.name) else {
                throw RedisError.configuration("redis URL \(url): unknown parameter '\(item.name)'; rediss:// takes ca, cert and key (PEM files)")
            }
            guard let value = item.value, !value.isEmpty else {
                throw RedisError.configuration("redis URL \(url): '\(item.name)' needs a file, e.g. ?ca=/etc/redis/ca.pem")
            }
            guard FileManager.default.isReadableFile(atPath: value) else {
                throw RedisError.configuration("redis URL \(url): \(item.name) file \(value) cannot be read")
            }
            switch item.name {
            case "ca": tls.caFile = value
            case "cert": tls.certificateFile = value
            default: tls.keyFile = value
            }
        }
        if (tls.certificateFile == nil) != (tls.keyFile == nil) {
            throw RedisError.configuration("redis URL \(url): a client certificate needs both cert and key")
        }
        return tls
    }

    public var description: String {
        let login = password == nil ? (username.map { "\($0)@" } ?? "") : "\(username ?? ""):***@"
        return "\(tls == nil ? "redis" : "rediss")://\(login)\(host):\(port)/\(database)"
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
