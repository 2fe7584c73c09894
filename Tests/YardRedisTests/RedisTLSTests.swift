import Foundation
import Testing
import YardQueue
import YardRedis
import YardTestSupport

/// `rediss://` against a real redis-server with a TLS port that requires
/// client certificates (Redis' default): the server is verified against the
/// given CA (its IP address included), the client presents its certificate,
/// and every refusal is a one-line error at connect, not a hang.
@Suite("Redis over TLS")
struct RedisTLSTests {
    @Test func commandsAndTheQueueWorkOverTLS() async throws {
        let certificates = try TestCertificates()
        defer { certificates.folder.remove() }
        let server = try await RedisServer(tls: certificates)
        let url = try #require(server.tlsURL)
        let configuration = try RedisConfiguration(url: url)
        #expect(configuration.description == "rediss://127.0.0.1:\(server.tlsPort!)/0")
        let redis = RedisClient(configuration)
        try await redis.send(["SET", "greeting", "over tls"])
        #expect(try await redis.send(["GET", "greeting"]).string == "over tls")
        let replies = try await redis.pipeline((0..<50).map { ["INCR", "n\($0 % 3)"] })
        #expect(replies.count == 50)

        let queue = RedisJobQueue(redis: redis)
        try await queue.enqueue("tls-job")
        let claim = try #require(try await queue.claim(worker: "w"))
        #expect(try await queue.finish(claim, worker: "w"))
        // The plain port sees what went through TLS: the same server.
        #expect(try await RedisClient(try server.configuration()).send(["GET", "greeting"]).string == "over tls")
    }

    @Test func aServerOrClientThatCannotBeVerifiedIsRefusedAtConnect() async throws {
        let certificates = try TestCertificates()
        defer { certificates.folder.remove() }
        let server = try await RedisServer(tls: certificates)
        let port = try #require(server.tlsPort)
        let client = "cert=\(certificates.clientCertificate)&key=\(certificates.clientKey)"
        for (url, why) in [
            ("rediss://127.0.0.1:\(port)/0?ca=\(certificates.otherCA)&\(client)", "a server certificate from another CA"),
            ("rediss://127.0.0.1:\(port)/0?\(client)", "the system's roots do not know the test CA"),
            ("rediss://127.0.0.1:\(port)/0?ca=\(certificates.ca)", "Redis requires a client certificate"),
        ] {
            var configuration = try RedisConfiguration(url: url)
            configuration.connectTimeout = .seconds(5)
            configuration.commandTimeout = .seconds(5)
            let started = ContinuousClock.now
            do {
                _ = try await RedisConnection.connect(configuration)
                Issue.record("connected although \(why)")
            } catch {
                #expect(error.description.contains("TLS"), "\(why): \(error.description)")
                #expect(!error.description.contains("\n"))
            }
            #expect(ContinuousClock.now - started < .seconds(8), "\(why): refused, not hung")
        }
    }

    @Test func aBadTLSURLSaysWhatIsWrong() throws {
        let certificates = try TestCertificates()
        defer { certificates.folder.remove() }
        let cases: [(String, String)] = [
            ("rediss://h:6380/0?verify=no", "unknown parameter 'verify'"),
            ("rediss://h:6380/0?ca=/nonexistent/ca.pem", "ca file /nonexistent/ca.pem cannot be read"),
            ("rediss://h:6380/0?cert=\(certificates.clientCertificate)", "needs both cert and key"),
            ("rediss://h:6380/0?ca=", "'ca' needs a file"),
            ("redis://h:6379/0?ca=\(certificates.ca)", "only rediss:// takes"),
            ("rediss://:sekrit@h:6380/0?bogus=1", "unknown parameter"),
        ]
        for (url, expected) in cases {
            #expect {
                _ = try RedisConfiguration(url: url)
            } throws: { error in
                let text = "\(error)"
                return text.contains(expected) && !text.contains("sekrit")
            }
        }
    }
}
