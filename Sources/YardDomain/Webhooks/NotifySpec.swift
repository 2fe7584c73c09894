/// A job's or sweep's `notify:` section: where to send a webhook when it
/// ends. A URL on its own, or a mapping:
///
///     notify: https://hooks.example.com/trainyard
///     notify: {url: https://hooks.slack.com/services/..., secret: s3cr3t, events: [job.failed], format: slack}
///
/// A job's `notify:` gets its own ends (default: every `job.*` event). A
/// sweep's gets `sweep.finished` by default; listing `job.*` events adds its
/// trials' ends (a trial's config carries the sweep's `notify:`, and is sent
/// as the sweep's, never on its own). `url` and `secret` are secrets: sealed
/// with the job's other secrets and masked in what the API shows.
public struct NotifySpec: Sendable, Hashable {
    public var url: WebhookURL
    public var secret: String?
    /// The events asked for; nil: the default for a job or a sweep.
    public var events: Set<WebhookEventName>?
    public var format: WebhookFormat?

    static let keys = ["url", "secret", "events", "format"]

    public init(url: WebhookURL, secret: String? = nil, events: Set<WebhookEventName>? = nil, format: WebhookFormat? = nil) {
        self.url = url
        self.secret = secret
        self.events = events
        self.format = format
    }

    /// The section, or a one-line error naming `notify.KEY`. With
    /// `allowPrivate` false a literal private address is refused here (a
    /// name is checked when it is resolved, at each delivery).
    public static func parse(_ value: JSONValue, allowPrivate: Bool = true) throws(YardError) -> NotifySpec {
        if let text = value.stringValue { return NotifySpec(url: try WebhookURL(text, field: "notify", allowPrivate: allowPrivate)) }
        guard let section = value.objectValue else {
            throw YardError.invalid("notify", "must be a URL or a mapping like {url: https://..., secret: ..., events: [job.failed], format: slack}, got \(value.kindName)")
        }
        for key in section.keys.sorted() where !keys.contains(key) {
            throw YardError.invalid("notify.\(key)", "unknown key; allowed keys are \(keys.joined(separator: ", "))")
        }
        guard let urlValue = section["url"] else { throw YardError.invalid("notify.url", "missing; give the http(s) URL to send the webhook to") }
        guard let text = urlValue.stringValue else { throw YardError.invalid("notify.url", "must be a string, got \(urlValue.kindName)") }
        var spec = NotifySpec(url: try WebhookURL(text, field: "notify.url", allowPrivate: allowPrivate))
        if let secret = section["secret"], secret != .null {
            guard let text = secret.stringValue, (8...1024).contains(text.count) else {
                throw YardError.invalid("notify.secret", "must be a string of 8 to 1024 characters (the HMAC key deliveries are signed with)")
            }
            spec.secret = text
        }
        if let events = section["events"] {
            let items: [String]
            if let text = events.stringValue { items = text.split(separator: ",").map(String.init) }
            else if let list = events.arrayValue, list.allSatisfy({ $0.stringValue != nil }) { items = list.compactMap(\.stringValue) }
            else { throw YardError.invalid("notify.events", "must be a list of event names such as [job.failed, sweep.finished]") }
            spec.events = try WebhookEventName.parseList(items, field: "notify.events")
        }
        if let format = section["format"] {
            guard let text = format.stringValue, let parsed = WebhookFormat(rawValue: text) else {
                throw YardError.invalid("notify.format", "must be json or slack")
            }
            spec.format = parsed
        }
        return spec
    }
}
