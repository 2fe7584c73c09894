import Crypto
import Foundation
import YardDomain

/// Where a delivery goes: a server-wide `--webhook`, or a job's or sweep's
/// `notify:`. `key` names it in the state file and in `yard webhooks`
/// (never the URL, a secret): `server-HASH`, `job:ID`, `sweep:ID`.
public struct WebhookTarget: Sendable, Hashable {
    public var key: String
    public var url: WebhookURL
    public var secret: String?
    /// The events it takes; nil: all.
    public var events: Set<WebhookEventName>?
    public var format: WebhookFormat

    public init(key: String, url: WebhookURL, secret: String?, events: Set<WebhookEventName>?, format: WebhookFormat?) {
        self.key = key
        self.url = url
        self.secret = secret
        self.events = events
        self.format = format ?? (url.isSlack ? .slack : .json)
    }

    public func takes(_ name: WebhookEventName) -> Bool { events?.contains(name) ?? true }

    /// `--webhook 'URL;events=job.failed,sweep.finished;format=slack'`, or a
    /// one-line error naming `--webhook`. Its key is a hash of the URL, so a
    /// restart with the same flag finds the target's state again.
    public static func server(_ spec: String, secret: String?, allowPrivate: Bool) throws(YardError) -> WebhookTarget {
        let field = "--webhook"
        var parts = spec.split(separator: ";", omittingEmptySubsequences: false).map { String($0) }
        let url = try WebhookURL(parts.removeFirst(), field: field, allowPrivate: allowPrivate)
        var events: Set<WebhookEventName>?
        var format: WebhookFormat?
        for part in parts {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            switch (pair.first, pair.count) {
            case ("events", 2):
                events = try WebhookEventName.parseList(pair[1].split(separator: ",").map(String.init), field: "\(field) events")
            case ("format", 2):
                guard let parsed = WebhookFormat(rawValue: pair[1]) else { throw YardError.invalid(field, "format must be json or slack") }
                format = parsed
            default:
                throw YardError.invalid(field, "\"\(part.prefix(40))\" is not an option; write URL;events=job.failed,sweep.finished;format=slack")
            }
        }
        let hash = SHA256.hash(data: Data(url.text.utf8)).hex.prefix(12)
        return WebhookTarget(key: "server-\(hash)", url: url, secret: secret, events: events, format: format)
    }

    /// A job's or sweep's `notify:` (`owner` is `job:ID` or `sweep:ID`).
    static func config(_ spec: NotifySpec, owner: String, defaultEvents: Set<WebhookEventName>) -> WebhookTarget {
        WebhookTarget(key: owner, url: spec.url, secret: spec.secret, events: spec.events ?? defaultEvents, format: spec.format)
    }
}
