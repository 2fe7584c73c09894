import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import YardDomain
import YardServer
import YardTestSupport
import YardWebhooks

@Suite("Webhooks in the API")
struct WebhookAPITests {
    static let hookURL = "https://hooks.example.com/services/T000/B000/XyzSecretPath"
    static let hookSecret = "notify-secret-value-77"

    @Test("a job's notify: url and secret are sealed with its secrets: GET /api/jobs and /api/jobs/{id} never show them")
    func notifyIsSealed() async throws {
        let t = try TestYard()
        try await t.test { client in
            let config = t.config("notify: {url: '\(Self.hookURL)', secret: \(Self.hookSecret), events: [job.failed]}\n")
            let created = try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: config))
            #expect(created.status == .created)
            let id = try #require(created.json["id"]?.stringValue)
            for path in ["/api/jobs/\(id)", "/api/jobs", "/api/events?follow=false"] {
                let shown = try await client.execute(uri: path, method: .get)
                #expect(shown.status == .ok)
                for secret in ["XyzSecretPath", "hooks.example.com/services", Self.hookSecret] {
                    #expect(!shown.text.contains(secret), "\(path) shows \(secret)")
                }
            }
            let job = try await client.execute(uri: "/api/jobs/\(id)", method: .get)
            #expect(job.json["config"]?["notify"]?["url"]?.stringValue == Redaction.mask)
            #expect(job.json["config"]?["notify"]?["events"]?[0]?.stringValue == "job.failed")
            // Sealed apart, where the deliverer reads them back.
            let secrets = try await t.yard.store.secrets(of: id)
            #expect(secrets.values.contains(.string(Self.hookURL)))
            #expect(secrets.values.contains(.string(Self.hookSecret)))
        }
    }

    @Test("a notify: URL on its own is a secret too")
    func bareNotifyIsSealed() async throws {
        let t = try TestYard()
        try await t.test { client in
            let created = try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: t.config("notify: \(Self.hookURL)\n")))
            let id = try #require(created.json["id"]?.stringValue)
            let shown = try await client.execute(uri: "/api/jobs/\(id)", method: .get)
            #expect(!shown.text.contains("XyzSecretPath"))
            #expect(shown.json["config"]?["notify"]?.stringValue == Redaction.mask)
        }
    }

    @Test("a literal private notify.url is refused at submission, with one line naming notify.url, unless --allow-private-webhooks")
    func privateRefusedAtSubmission() async throws {
        let t = try TestYard()
        try await t.test { client in
            let refused = try await client.execute(uri: "/api/jobs", method: .post,
                                                   body: ByteBuffer(string: t.config("notify: {url: 'http://169.254.169.254/latest/meta-data'}\n")))
            #expect(refused.status == .badRequest)
            #expect(refused.text.contains("notify.url"))
            #expect(refused.text.contains("link-local"))
            #expect(!refused.text.contains("meta-data"))
            let bad = try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: t.config("notify: {url: 'ftp://x.example/'}\n")))
            #expect(bad.status == .badRequest)
            #expect(bad.text.contains("notify.url"))
            let events = try await client.execute(uri: "/api/jobs", method: .post,
                                                  body: ByteBuffer(string: t.config("notify: {url: 'https://x.example/', events: [job.exploded]}\n")))
            #expect(events.text.contains("notify.events"))
        }
        var settings = WebhookSettings()
        settings.allowPrivate = true
        let allowing = try TestYard(webhooks: settings)
        try await allowing.test { client in
            let accepted = try await client.execute(uri: "/api/jobs", method: .post,
                                                    body: ByteBuffer(string: allowing.config("notify: {url: 'http://127.0.0.1:9/hook'}\n")))
            #expect(accepted.status == .created)
        }
    }

    @Test("GET /api/webhooks shows each server-wide target as scheme and host, with its filter")
    func status() async throws {
        var settings = WebhookSettings()
        settings.targets = [try WebhookTarget.server("https://hooks.slack.com/services/T1/B2/SlackSecretPart;events=job.failed", secret: "x-secret-123", allowPrivate: false)]
        let t = try TestYard(webhooks: settings)
        let service = Task { try await t.yard.webhooks.run() }
        try await eventually("the deliverer to load its state") { await !t.yard.webhooks.status().targets.isEmpty }
        try await t.test { client in
            let response = try await client.execute(uri: "/api/webhooks", method: .get)
            #expect(response.status == .ok)
            #expect(!response.text.contains("SlackSecretPart"))
            #expect(!response.text.contains("x-secret-123"))
            let target = response.json["targets"]?[0]
            #expect(target?["url"]?.stringValue == "https://hooks.slack.com")
            #expect(target?["format"]?.stringValue == "slack")
            #expect(target?["events"]?[0]?.stringValue == "job.failed")
            #expect(target?["pending"]?.intValue == 0)
        }
        service.cancel()
        _ = try? await service.value
    }
}
