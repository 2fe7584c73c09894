import Foundation
import Logging
import Testing
import YardRedis
import YardTestSupport

/// The client against a real redis-server started per test: typed replies
/// and errors, concurrent callers on one pipelined connection, login and
/// database from the URL, a server that restarts, one that hangs.
@Suite("Redis client")
struct RedisClientTests {
    @Test func repliesAreTypedAndErrorRepliesThrow() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        #expect(try await redis.send(["SET", "k", "v"]) == .simpleString("OK"))
        #expect(try await redis.send(["GET", "k"]).string == "v")
        #expect(try await redis.send(["GET", "missing"]) == .null)
        #expect(try await redis.send(["INCR", "n"]).int == 1)
        #expect(try await redis.send(["RPUSH", "l", "a", "b"]).int == 2)
        #expect(try await redis.send(["LRANGE", "l", "0", "-1"]).array?.compactMap(\.string) == ["a", "b"])
        await #expect(throws: RedisError.server("WRONGTYPE Operation against a key holding the wrong kind of value")) {
            try await redis.send(["INCR", "l"])
        }
        let error = await #expect(throws: RedisError.self) { try await redis.send(["NOSUCHCOMMAND"]) }
        #expect(error?.serverCode == "ERR")
        // An error reply leaves the connection usable, and the pipeline keeps
        // each command's own result.
        let replies = try await redis.pipeline([["INCR", "n"], ["INCR", "l"], ["GET", "n"]])
        #expect(replies[0] == .integer(2))
        #expect(replies[1].string == nil)
        #expect(replies[2].string == "2")
    }

    @Test func binaryAndLargeValuesRoundTrip() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        let text = String(repeating: "ünïcode\r\n$-1\r\n*3", count: 40_000)  // ~800 KB, RESP-looking bytes inside
        try await redis.send(["SET", "big", text])
        #expect(try await redis.send(["GET", "big"]).string == text)
    }

    /// 50 callers share one connection; each gets its own replies back.
    @Test func concurrentCallersGetTheirOwnReplies() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration(), name: "yard-test-mux")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<50 {
                group.addTask {
                    for i in 0..<40 {
                        try await redis.send(["SET", "c\(caller)", "\(caller):\(i)"])
                        let value = try await redis.send(["GET", "c\(caller)"]).string
                        #expect(value == "\(caller):\(i)")
                        try await redis.send(["INCR", "total"])
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await redis.send(["GET", "total"]).string == "2000")
        let clients = try await redis.send(["CLIENT", "LIST"]).string ?? ""
        // Counted by name: the fixture's own probe connection may still be closing.
        #expect(clients.split(separator: "\n").filter { $0.contains("name=yard-test-mux") }.count == 1, "one multiplexed connection: \(clients)")
    }

    @Test func loginAndDatabaseComeFromTheURL() async throws {
        let server = try await RedisServer(password: "s3cret/with:odd@chars")
        let url = "redis://:\("s3cret/with:odd@chars".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)@127.0.0.1:\(server.port)/3"
        let configuration = try RedisConfiguration(url: url)
        #expect(configuration.password == "s3cret/with:odd@chars")
        #expect(configuration.database == 3)
        #expect(!configuration.description.contains("s3cret"))
        let redis = RedisClient(configuration)
        try await redis.send(["SET", "where", "db3"])
        let other = RedisClient(try server.configuration(database: 0))
        #expect(try await other.send(["GET", "where"]) == .null)
        #expect(try await other.send(["SELECT", "3"]) == .simpleString("OK"))

        var wrong = configuration
        wrong.password = "not-it"
        let error = await #expect(throws: RedisError.self) { try await RedisClient(wrong).send(["PING"]) }
        #expect(error?.description.contains("refused the login") == true)
        #expect(error?.description.contains("not-it") == false, "no secret in the message")
    }

    @Test func badURLsSayWhatIsWrong() {
        for (url, says) in [("http://127.0.0.1", "is not one"), ("redis://", "is not one"), ("redis://h:99999", "out of range"),
                            ("redis://h/db1", "not a number"), ("rediss://:pw@h?ca=/no/such.pem", "cannot be read"), ("redis://h?x=1", "query")] {
            do {
                _ = try RedisConfiguration(url: url)
                Issue.record("\(url) was accepted")
            } catch {
                #expect(error.description.contains(says), "\(url): \(error)")
                #expect(!error.description.contains("pw@"), "the password is hidden")
            }
        }
    }

    /// Redis restarts (AOF on): the command in the gap fails with a
    /// connection error, the outage is logged once, and the client is back
    /// with the data once the server is.
    @Test func reconnectsAfterTheServerRestarts() async throws {
        let server = try await RedisServer()
        let logs = LogCapture()
        let redis = RedisClient(try server.configuration(), logger: logs.logger, backoff: [.milliseconds(50)])
        try await redis.send(["SET", "kept", "yes"])
        try await server.stop()
        for _ in 0..<5 {
            await #expect(throws: RedisError.self) { try await redis.send(["GET", "kept"]) }
            try await Task.sleep(for: .milliseconds(60))
        }
        #expect(logs.count(of: .warning) == 1, "one line per outage: \(logs.messages(.warning))")
        try await server.start()
        try await eventually("the client reconnects") { (try? await redis.send(["GET", "kept"]))?.string == "yes" }
        #expect(logs.messages(.notice).count == 1)
        #expect(logs.messages(.notice).first?.contains("reachable again") == true)
    }

    /// A server that hangs (SIGSTOP) fails commands at the timeout instead
    /// of hanging the caller; after it resumes the client reconnects.
    @Test func aHungServerTimesOut() async throws {
        let server = try await RedisServer()
        var configuration = try server.configuration()
        configuration.commandTimeout = .milliseconds(300)
        let redis = RedisClient(configuration, backoff: [.milliseconds(10)])
        try await redis.send(["SET", "k", "1"])
        server.freeze()
        let started = ContinuousClock.now
        let error = await #expect(throws: RedisError.self) { try await redis.send(["GET", "k"]) }
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(error?.isConnectionLoss == true)
        server.thaw()
        try await eventually("the client is back") { (try? await redis.send(["GET", "k"]))?.string == "1" }
    }

    /// A command sent on a connection that has just been closed fails at
    /// once; it used to wait forever (its write never reached the handler).
    @Test func aCommandOnAClosedConnectionFailsInsteadOfHanging() async throws {
        let server = try await RedisServer()
        let connection = try await RedisConnection.connect(try server.configuration())
        connection.close()
        let outcome = try await withThrowingTaskGroup(of: String.self) { group in
            group.addTask {
                do { _ = try await connection.send(["PING"], timeout: .seconds(30)); return "answered" } catch { return "failed" }
            }
            group.addTask { try await Task.sleep(for: .seconds(5)); return "hung" }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        #expect(outcome == "failed")
    }

    @Test func scriptsAreLoadedAgainWhenRedisForgetsThem() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await redis.run(script, keys: ["n"], arguments: ["5"]).int == 5)
        #expect(try await redis.send(["SCRIPT", "EXISTS", script.sha1]).array == [.integer(1)])
        try await redis.send(["SCRIPT", "FLUSH"])
        #expect(try await redis.run(script, keys: ["n"], arguments: ["2"]).int == 7)
        await #expect(throws: RedisError.self) {
            try await redis.run(RedisScript("return redis.call('NOPE')"), keys: [], arguments: [])
        }
    }

    @Test func aServerThatIsNotThereFailsFast() async throws {
        var configuration = RedisConfiguration(port: try freePort())
        configuration.connectTimeout = .seconds(1)
        let error = await #expect(throws: RedisError.self) { try await RedisClient(configuration).send(["PING"]) }
        #expect(error?.description.contains("cannot connect to redis://127.0.0.1:\(configuration.port)/0") == true)
    }
}
