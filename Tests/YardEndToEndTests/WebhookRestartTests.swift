import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import YardDomain
import YardTestSupport
import YardWebhooks

@Suite("Webhooks across a crash", .serialized, .enabled(if: TestEnvironment.ready, "run scripts/test.sh"))
struct WebhookRestartTests {
    @Test("yard serve killed -9 between a job's end and its delivery delivers it, signed, after the restart")
    func killedBetweenEventAndDelivery() async throws {
        let h = try YardHarness("webhooks")
        let port = try freePort()  // the receiver is down until the server was killed
        let data = try h.dir.write("data/data.yaml", "path: .\ntrain: images\nval: images\nnames: {0: a}\n")
        let secret = "e2e-server-secret-42"
        // A minute before the first retry: only the restart can deliver it in this test's time.
        let environment = ["YARD_WEBHOOK_SECRET": secret, "YARD_WEBHOOK_RETRY_BASE_MS": "60000"]
        let arguments = ["serve", "--port", "0", "--data-dir", h.data, "--python", h.python, "--allow-private-webhooks",
                         "--webhook", "http://127.0.0.1:\(port)/hook;events=job.stopped"]
        let first = try await h.serving(arguments, environment: environment, log: "serve-1")
        defer { if first.process.isRunning { first.process.terminate() } }  // a failed expectation leaves no server behind
        // No workers: the job stays queued, and a stop ends it at once.
        let id = try await first.submit("model: yolov8n.yaml\ntrain: {data: \(data), epochs: 1}\n")
        var stop = HTTPClientRequest(url: first.base + "/api/jobs/\(id)/stop")
        stop.method = .POST
        let stopped = try await HTTPClient.shared.execute(stop, timeout: .seconds(30))
        #expect(stopped.status == .ok)
        try await first.waitForState(id, "stopped", timeout: .seconds(30))
        try await eventually("the failed first try", timeout: .seconds(30)) {
            let target = try await first.get("/api/webhooks")["targets"]?[0]
            return target?["pending"]?.intValue == 1 && target?["last_error"]?.stringValue != nil
        }
        let shown = try await first.get("/api/webhooks")
        #expect(shown["targets"]?[0]?["url"]?.stringValue == "http://127.0.0.1")
        kill(first.process.processIdentifier, SIGKILL)
        try await eventually("yard serve to die", timeout: .seconds(30)) { !first.process.isRunning }

        let receiver = try await Receiver.start(port: port)
        let second = try await h.serving(arguments, environment: environment, log: "serve-2")
        defer { if second.process.isRunning { second.process.terminate() } }
        try await eventually("the delivery after the restart", timeout: .seconds(60)) { receiver.count >= 1 }
        let delivery = try #require(receiver.all.first)
        let json = try #require(delivery.json)
        #expect(json["event"] as? String == "job.stopped")
        #expect(json["id"] as? String == id)
        #expect(delivery.sequence == (json["sequence"] as? Int).map(String.init))
        let timestamp = try #require(delivery.headers["x-trainyard-timestamp"].flatMap { Int64($0) })
        #expect(WebhookSignature.verify(signature: delivery.headers["x-trainyard-signature"] ?? "", body: delivery.body, timestamp: timestamp, secret: secret))
        try await eventually("the status to show it delivered", timeout: .seconds(30)) {
            try await second.get("/api/webhooks")["targets"]?[0]?["pending"]?.intValue == 0
        }
        #expect(receiver.count == 1)
        let listed = try h.yard(["webhooks"], server: second.port)
        #expect(listed.status == 0)
        #expect(listed.output.contains("http://127.0.0.1") && listed.output.contains("job.stopped"), "\(listed.output)")
        #expect(!listed.output.contains("/hook"))
        // Neither log holds the server secret.
        for log in [first.log, second.log] {
            #expect(!((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains(secret))
        }
        try await second.signal(SIGTERM)
        await receiver.stop()
    }

    @Test("bad webhook flags stop yard up before it starts, on one error line naming the flag")
    func badFlags() throws {
        let h = try YardHarness("webhook-flags")
        defer { h.dir.remove() }
        let cases: [([String], [String: String], String)] = [
            (["--webhook", "ftp://x.example/hook"], [:], "--webhook"),
            (["--webhook", "http://10.0.0.7/hook"], [:], "--allow-private-webhooks"),
            (["--webhook", "https://x.example/hook;events=job.exploded"], [:], "job.exploded"),
            (["--webhook", "https://x.example/hook", "--webhook-secret-file", h.dir.file("missing")], [:], "--webhook-secret-file"),
            (["--webhook", "https://x.example/hook"], ["YARD_WEBHOOK_SECRET": "short"], "at least 8"),
        ]
        for (flags, environment, what) in cases {
            let (process, log) = try h.launch(["up", "--port", "0", "--data-dir", h.data] + flags, environment: environment, log: "flags")
            process.waitUntilExit()
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(process.terminationStatus != 0, "\(flags)")
            // ArgumentParser's error line, then its usage lines.
            let error = output.split(separator: "\n").first { $0.hasPrefix("Error:") }
            #expect(error?.contains(what) == true, "\(flags): \(output)")
        }
    }
}
