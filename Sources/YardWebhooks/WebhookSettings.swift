import Foundation

/// The server's webhook settings (`yard up` / `yard server` flags).
public struct WebhookSettings: Sendable {
    /// `--webhook URL[;events=...][;format=slack]`, signed with the server-wide secret.
    public var targets: [WebhookTarget] = []
    /// `--allow-private-webhooks`: targets on loopback, link-local and private addresses are allowed.
    public var allowPrivate = false
    public var backoff = WebhookBackoff()
    /// For one whole delivery (connect, send, answer).
    public var timeout: Duration = .seconds(10)
    /// Deliveries under way at once (a hanging receiver holds one until its timeout).
    public var maxInFlight = 16

    public init() {}
}
