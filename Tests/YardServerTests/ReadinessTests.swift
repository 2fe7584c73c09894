import Foundation
import HTTPTypes
import Synchronization
import HummingbirdTesting
import Testing
import YardDomain
import YardEngine
import YardQueue
import YardRedis
import YardServer
import YardStore
import YardTestSupport

/// `GET /ready` (issue 30): 200 when the store, the queue, the engine and
/// the artifact folder answer; 503 naming the first that does not, within
/// the probe's deadline even when a dependency hangs; no token needed.
@Suite("Readiness")
struct ReadinessTests {
    /// The engine as the repository ships it, with this machine's python3.
    static var realEngine: EngineEnvironment {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return EngineEnvironment(python: "/usr/bin/python3", engineDirectory: root.appendingPathComponent("engine").path, ultralyticsDirectory: "/tmp")
    }

    static func ready(_ t: TestYard, token: String? = nil) async throws -> (status: Int, body: JSONValue) {
        let answer = Mutex<(Int, JSONValue)>((0, .null))
        try await t.test { client in
            var headers: HTTPFields = [:]
            if let token { headers[.authorization] = "Bearer \(token)" }
            try await client.execute(uri: "/ready", method: .get, headers: headers) { response in
                answer.withLock { $0 = (Int(response.status.code), response.json) }
            }
        }
        return answer.withLock { $0 }
    }

    @Test func readyWhenEveryPartAnswersAndNoTokenIsNeeded() async throws {
        let t = try TestYard(token: "secret-token-for-ready", engine: Self.realEngine)
        defer { t.dir.remove() }
        let (status, body) = try await Self.ready(t)
        #expect(status == 200, "\(body)")
        #expect(body["status"] == "ready")
        for part in ["store", "queue", "engine", "artifacts"] { #expect(body["checks"]?[part]?["ok"] == true, "\(part): \(body)") }
        #expect(body["checks"]?["queue"]?["detail"] == "embedded (in the store)")
        #expect(body["failing"] == nil)
    }

    @Test func anEngineThatIsNotThereIsNamed() async throws {
        let t = try TestYard()  // python /nonexistent
        defer { t.dir.remove() }
        let (status, body) = try await Self.ready(t)
        #expect(status == 503)
        #expect(body["failing"] == "engine")
        #expect(body["message"]?.stringValue?.contains("/nonexistent") == true, "\(body)")
        #expect(body["checks"]?["store"]?["ok"] == true)
    }

    @Test func aStoreThatFailsIsNamed() async throws {
        let store = FaultyJobStore(fault: { $0.name == "eventFloor" ? FaultyJobStore.Injected("disk I/O error") : nil })
        let t = try TestYard(store: store, engine: Self.realEngine)
        defer { t.dir.remove() }
        let (status, body) = try await Self.ready(t)
        #expect(status == 503)
        #expect(body["failing"] == "store", "\(body)")
        #expect(body["message"]?.stringValue?.contains("disk I/O error") == true, "\(body)")
    }

    /// A Redis that accepts and never answers: the probe says so within its deadline, it does not hang with it.
    @Test(.timeLimit(.minutes(1))) func aRedisThatHangsOrIsDownIsNamedWithinTheDeadline() async throws {
        let hung = try Listener()
        defer { hung.close() }
        for port in [hung.port, try Listener.closedPort()] {
            let redis = RedisClient(RedisConfiguration(host: "127.0.0.1", port: port), name: "ready-test")
            let box = try SecretBox(keys: SecretBox.parseKeys(SecretBox.newKey(), source: "test"))
            let t = try TestYard(engine: Self.realEngine, remote: RemoteWorkers(redis: redis, keys: RedisKeys(), box: box))
            defer { t.dir.remove() }
            let clock = ContinuousClock()
            let start = clock.now
            let (status, body) = try await Self.ready(t)
            #expect(clock.now - start < .seconds(6), "the probe took \(clock.now - start)")
            #expect(status == 503)
            #expect(body["failing"] == "queue", "\(body)")
            #expect(body["checks"]?["store"]?["ok"] == true)
            await redis.close()
        }
    }
}
