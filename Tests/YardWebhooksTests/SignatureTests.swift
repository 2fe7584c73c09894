import Foundation
import Testing
import YardWebhooks

@Suite("Webhook signatures and backoff")
struct SignatureTests {
    @Test("the signature is HMAC-SHA256 of TIMESTAMP.BODY in hex, as GitHub and Stripe receivers check it")
    func signature() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'topsecret'
        let body = Data(#"{"a":1}"#.utf8)
        let signature = WebhookSignature.sign(body: body, timestamp: 1_700_000_000, secret: "topsecret")
        #expect(signature == "sha256=\(SignatureTests.expected)")
        #expect(WebhookSignature.verify(signature: signature, body: body, timestamp: 1_700_000_000, secret: "topsecret"))
        #expect(!WebhookSignature.verify(signature: signature, body: body, timestamp: 1_700_000_001, secret: "topsecret"))
        #expect(!WebhookSignature.verify(signature: signature, body: Data(#"{"a":2}"#.utf8), timestamp: 1_700_000_000, secret: "topsecret"))
        #expect(!WebhookSignature.verify(signature: signature, body: body, timestamp: 1_700_000_000, secret: "othersecret"))
    }

    static let expected = "6a939b0c71853d606167625a15168ee9188c6a511c773ef4f42d307f3849e50f"

    @Test("retries double from the base up to the cap, with jitter between half and all of each step, and stop after 24 h")
    func backoff() {
        let backoff = WebhookBackoff(base: 30, cap: 3600, giveUpAfter: 86_400)
        #expect((1...9).map { backoff.step(afterFailure: $0) } == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600])
        #expect(backoff.delay(afterFailure: 1, random: 0) == 15)
        #expect(backoff.delay(afterFailure: 1, random: 0.999_999) > 29.9)
        #expect(backoff.delay(afterFailure: 3, random: 0.5) == 90)
        #expect(backoff.step(afterFailure: 10_000) == 3600)
        let first = Date(timeIntervalSince1970: 0)
        #expect(!backoff.givesUp(first: first, now: first.addingTimeInterval(86_399)))
        #expect(backoff.givesUp(first: first, now: first.addingTimeInterval(86_400)))
        // A day of retries at the defaults is a few dozen tries, not thousands.
        var elapsed = 0.0, tries = 0
        while elapsed < 86_400 { tries += 1; elapsed += backoff.delay(afterFailure: tries, random: 0.5) }
        #expect((25...40).contains(tries))
    }
}
