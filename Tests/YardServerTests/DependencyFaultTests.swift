import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import YardArtifacts
import YardDomain
import YardTestSupport
import YardTracker

/// Issue 7: MLflow or S3 down, or hanging, must neither hold a worker for
/// minutes nor keep the service from shutting down.
@Suite("Reliability: dependencies that fail or hang")
struct DependencyFaultTests {
    @Test func theSpoolBacksOffToItsCapAndLogsOncePerOutage() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let log = LogCapture()
        let port = try Listener.closedPort()
        let spool = TrackingSpool(directory: dir.path, logger: log.logger, retryDelay: .seconds(1), maxRetryDelay: .seconds(4),
                                  clock: clock, clientFactory: { MLflowClient(trackingURI: $0, http: Listener.quickHTTP) })
        try await spool.append(jobID: "j", ["op": "start", "tracking_uri": .string("http://127.0.0.1:\(port)"), "experiment": "e"])
        let running = Task { try await spool.run() }
        defer { running.cancel() }
        var waits: [Duration] = []
        for _ in 0..<5 {
            await clock.untilSleeping(1)
            waits.append(try #require(clock.nextWake))
            clock.advance(by: waits.last!)
        }
        #expect(waits == [.seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4)])
        #expect(log.count(of: .warning) == 1, "one warning per outage, not one per retry")
        #expect(await spool.pendingJobs() == ["j"], "nothing is dropped while MLflow is down")
    }

    @Test(.timeLimit(.minutes(1))) func shutdownDoesNotWaitForAnMLflowThatHangs() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let listener = try Listener()  // accepts connections, never answers
        defer { listener.close() }
        let spool = TrackingSpool(directory: dir.path, logger: Logger(label: "test"))
        try await spool.append(jobID: "j", ["op": "start", "tracking_uri": .string("http://127.0.0.1:\(listener.port)"), "experiment": "e"])
        let group = ServiceGroup(configuration: .init(services: [spool], gracefulShutdownSignals: [], logger: Logger(label: "test")))
        let clock = ContinuousClock()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await eventually("a request to hang") { listener.accepted > 0 }
            let start = clock.now
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            // The request's own timeout is 30 s: the shutdown did not wait for it.
            #expect(clock.now - start < .seconds(10))
        }
        #expect(await spool.pendingJobs() == ["j"], "the unsent call stays spooled")
    }

    /// A replay that finished a run's file deleted it, with whatever was
    /// spooled while its last call was in flight (a registration was lost).
    @Test(.timeLimit(.minutes(1))) func whatIsSpooledDuringAReplayIsNeverDeletedWithTheFile() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let server = try Listener(answerAfter: DispatchSemaphore(value: 0))
        defer { server.close() }
        try dir.write("j.state.json", #"{"sent": 0, "run_id": "r1", "tracking_uri": "http://127.0.0.1:\#(server.port)"}"#)
        try dir.write("j.jsonl", #"{"op": "end", "status": "FINISHED", "end_time": 1}"# + "\n")
        let spool = TrackingSpool(directory: dir.path, logger: Logger(label: "test"))
        let replay = Task { await spool.replayAll() }
        try await eventually("the end call to be in flight") { server.accepted > 0 }
        try await spool.append(jobID: "j", ["op": "register", "name": "m"])
        server.answerAfter?.signal()
        #expect(await replay.value)
        #expect(await spool.pendingJobs() == ["j"], "the registration is still spooled")
        let text = try String(contentsOfFile: dir.file("j.jsonl"), encoding: .utf8)
        #expect(text.contains(#""op":"register""#))
    }

    @Test func anUnreachableS3EndpointFailsAfterBoundedRetriesNamingIt() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let port = try Listener.closedPort()
        var client = try S3Client(endpoint: "http://127.0.0.1:\(port)", accessKey: "a", secretKey: "b", http: Listener.quickHTTP)
        client.retryBackoff = [.milliseconds(10), .milliseconds(10)]
        let file = try dir.write("w.pt", "weights")
        do {
            try await client.putFile(file, bucket: "b", key: "k")
            Issue.record("expected a failure")
        } catch let error as YardError {
            #expect(error.field == "minio.MINIO_ENDPOINT")
            #expect(error.message.contains("cannot reach S3 at 127.0.0.1:\(port) (3 tries"))
            #expect(!error.message.contains("\n"))
        }
    }
}

/// A socket that accepts connections and never answers (a hung server),
/// and a port nothing listens on (a dead one).
final class Listener: Sendable {
    let fd: Int32
    let port: Int
    /// When set, each connection is answered `200 {}` once this is signalled.
    let answerAfter: DispatchSemaphore?
    private let count = Atomic(0)
    var accepted: Int { count.load(ordering: .relaxed) }

    /// Fails fast where the default clients wait seconds: for tests of dead endpoints.
    static let quickHTTP = HTTPClient(eventLoopGroupProvider: .singleton,
                                      configuration: .init(timeout: .init(connect: .milliseconds(200), read: .seconds(30))))

    init(answerAfter: DispatchSemaphore? = nil) throws {
        (fd, port) = try bindLoopback()
        self.answerAfter = answerAfter
        guard listen(fd, 16) == 0 else { throw FaultyJobStore.Injected("listen failed") }
        Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                count.add(1, ordering: .relaxed)  // held open, never answered unless `answerAfter`
                guard let gate = answerAfter else { continue }
                Thread {
                    var buffer = [UInt8](repeating: 0, count: 65536)
                    _ = read(client, &buffer, buffer.count)
                    gate.wait()
                    let reply = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".utf8)
                    _ = reply.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                    _ = Glibc.close(client)
                }.start()
            }
        }.start()
    }

    func close() { shutdown(fd, Int32(SHUT_RDWR)); _ = Glibc.close(fd) }

    /// A port that was free a moment ago: connections to it are refused.
    static func closedPort() throws -> Int {
        try freePort()
    }
}


