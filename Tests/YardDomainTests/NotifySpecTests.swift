import Testing
import YardDomain

@Suite("notify: in a config")
struct NotifySpecTests {
    static func parse(_ notify: String, allowPrivate: Bool = true) throws(YardError) -> JobConfig {
        var parser = JobConfigParser(baseDirectory: "/cfg") { $0 == "/cfg/data.yaml" }
        parser.allowPrivateWebhooks = allowPrivate
        return try parser.parse("model: yolov8n.yaml\ntrain: {data: data.yaml}\nnotify: \(notify)\n")
    }

    @Test("a URL, or a mapping of url, secret, events and format")
    func accepted() throws {
        #expect(try Self.parse("https://hooks.example.com/a").notify?.url.host == "hooks.example.com")
        let full = try #require(try Self.parse("{url: 'https://hooks.slack.com/services/T/B/x', secret: abcdefgh1, events: [job.failed, sweep.finished]}").notify)
        #expect(full.secret == "abcdefgh1")
        #expect(full.events == [.jobFailed, .sweepFinished])
        #expect(full.url.isSlack)
        #expect(full.url.masked == "https://hooks.slack.com")
        #expect(try Self.parse("{url: 'https://x.example/', format: slack}").notify?.format == .slack)
    }

    @Test("bad input is one line naming the field", arguments: [
        ("42", "notify:"), ("{secret: abcdefgh1}", "notify.url:"), ("{url: 5}", "notify.url:"),
        ("{url: 'gopher://x.example/'}", "notify.url:"), ("{url: 'https://user:pw@x.example/'}", "notify.url:"),
        ("{url: 'https:///nohost'}", "notify.url:"), ("{url: 'https://x.example/', secret: short}", "notify.secret:"),
        ("{url: 'https://x.example/', events: [job.exploded]}", "notify.events:"), ("{url: 'https://x.example/', events: []}", "notify.events:"),
        ("{url: 'https://x.example/', format: teams}", "notify.format:"), ("{url: 'https://x.example/', colour: red}", "notify.colour:"),
    ])
    func refused(notify: String, field: String) {
        do {
            _ = try Self.parse(notify)
            Issue.record("\(notify) was accepted")
        } catch {
            #expect(error.message.hasPrefix(field), "\(error.message)")
            #expect(!error.message.contains("\n"))
            #expect(!error.message.contains("pw@"))
        }
    }

    @Test("a literal private address is refused when the server does not allow them; the error shows scheme and host only")
    func privateLiteral() throws {
        #expect(throws: YardError.self) { try Self.parse("{url: 'http://192.168.0.10/secret-path'}", allowPrivate: false) }
        do {
            _ = try Self.parse("http://[::1]:8080/secret-path", allowPrivate: false)
        } catch {
            #expect(error.message.contains("loopback"))
            #expect(!error.message.contains("secret-path"))
        }
        _ = try Self.parse("http://192.168.0.10/x", allowPrivate: true)
        _ = try Self.parse("https://hooks.example.com/x", allowPrivate: false)
    }

    @Test("notify's url is sealed as a secret, as notify.secret is, and restored for the deliverer")
    func sealed() throws {
        let config = try Self.parse("{url: 'https://hooks.example.com/T/B/pathsecret', secret: abcdefgh1}")
        let secrets = Redaction.secrets(of: config.json)
        let redacted = Redaction.redact(config.json)
        #expect(redacted["notify"]?["url"]?.stringValue == Redaction.mask)
        #expect(redacted["notify"]?["secret"]?.stringValue == Redaction.mask)
        #expect(Redaction.restore(redacted, secrets: secrets) == config.json)
        let bare = try Self.parse("https://hooks.example.com/T/B/pathsecret")
        #expect(Redaction.redact(bare.json)["notify"]?.stringValue == Redaction.mask)
    }
}
