import Foundation

/// A webhook target's URL, checked: http or https, a host, no user or
/// password in it. Webhook URLs are secrets (a Slack hook's path is its
/// credential): only `masked` (scheme and host) is ever shown or logged.
public struct WebhookURL: Sendable, Hashable, Codable {
    public let text: String
    public let scheme: String
    public let host: String
    public let port: Int

    public static let maxLength = 2048

    /// A URL, or a one-line error naming `field` (which never quotes the URL's path or query).
    public init(_ text: String, field: String, allowPrivate: Bool = true) throws(YardError) {
        guard !text.isEmpty, text.count <= Self.maxLength, !text.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw YardError.invalid(field, "must be an http(s) URL of at most \(Self.maxLength) characters without spaces")
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw YardError.invalid(field, "is not a URL; give an http(s) URL such as https://hooks.example.com/trainyard")
        }
        guard scheme == "http" || scheme == "https" else {
            throw YardError.invalid(field, "scheme \(scheme.prefix(20)) is not allowed; only http and https webhooks are sent")
        }
        guard let rawHost = components.host, !rawHost.isEmpty else {
            throw YardError.invalid(field, "has no host; give an http(s) URL such as https://hooks.example.com/trainyard")
        }
        guard components.user == nil, components.password == nil else {
            throw YardError.invalid(field, "must not carry a user or password; sign deliveries with a secret instead")
        }
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        if let port = components.port, !(1...65535).contains(port) {
            throw YardError.invalid(field, "port \(port) is out of range")
        }
        self.text = text
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = components.port ?? (scheme == "https" ? 443 : 80)
        if !allowPrivate, let address = NetworkAddress(literal: self.host), let why = address.privateKind {
            throw YardError.invalid(field, "\(masked) is a \(why) address; webhooks to such addresses are refused (server-side request forgery) unless the server runs with --allow-private-webhooks")
        }
    }

    /// What may be shown of it: scheme and host (a Slack hook's path is its secret).
    public var masked: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(shownHost)"
    }

    /// Slack's incoming webhooks (the slack format is chosen for them).
    public var isSlack: Bool { host == "hooks.slack.com" }
}
