/// What can go wrong talking to Redis, each with a message a user can act on.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A bad `redis://` URL or option.
    case configuration(String)
    /// Redis could not be reached, or the connection broke. Whether a
    /// command sent just before was applied is unknown.
    case connection(String)
    /// No reply within the command timeout; the connection was dropped.
    case timeout(String)
    /// Redis answered with an error reply (`-ERR ...`, `-NOSCRIPT ...`).
    case server(String)
    /// A reply that is not what the command returns, or broken RESP.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .configuration(let text), .connection(let text), .timeout(let text), .protocolViolation(let text): text
        case .server(let text): "redis replied: \(text)"
        }
    }

    /// True when the command may not have reached Redis or its reply was
    /// lost: the connection is gone and the next command reconnects.
    public var isConnectionLoss: Bool {
        switch self {
        case .connection, .timeout: true
        default: false
        }
    }

    /// The error code of a server reply (`NOSCRIPT`, `BUSYGROUP`, `WRONGTYPE`...).
    public var serverCode: String? {
        guard case .server(let text) = self else { return nil }
        return text.split(separator: " ", maxSplits: 1).first.map(String.init)
    }
}
