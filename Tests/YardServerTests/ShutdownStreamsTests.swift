import Foundation
import Synchronization
import Testing
import YardDomain
import YardServer
import YardStore
import YardTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A server shutting down ends every open stream, the global log's and a
/// job's, whether its client reads or not: a client that stops reading
/// (its window full, the server's last write waiting for it) has its
/// connection closed after a grace period. Before, such a client, or any
/// reader of a job that was still running, held the shutdown for ever.
@Suite("Shutdown with open streams")
struct ShutdownStreamsTests {
    static let routes = ["/api/events?after=0", "/api/jobs/j1/events", "/api/jobs/j1/logs?follow=true"]

    @Test(.timeLimit(.minutes(2)), arguments: routes)
    func aClientThatNeverReadsDoesNotHoldTheShutdown(route: String) async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: j1")))
        let store = t.yard.store
        let silent = Mutex<SilentClient?>(nil)
        let ended = Mutex<ContinuousClock.Instant?>(nil)
        let clock = ContinuousClock()
        let done = Mutex(false)
        let shutdown = Task {
            defer { done.withLock { $0 = true } }
            try await t.live { port in
                let client = try SilentClient(port: port, target: route)
                silent.withLock { $0 = client }
                try await eventually("the stream to subscribe", timeout: .seconds(30)) { store.feed.subscriberCount >= 1 }
                // Far more than the socket buffers hold (a 4 KiB window on the client's side).
                let filler = String(repeating: "x", count: 4000)
                for n in 0..<3000 {
                    try await store.appendEvent(jobID: "j1", type: "progress", payload: ["n": .int(n), "pad": .string(filler)])
                    if n % 100 == 0 { _ = try await store.appendLog(jobID: "j1", lines: Array(repeating: filler, count: 100)) }
                }
                try await Task.sleep(for: .seconds(1))
                ended.withLock { $0 = clock.now }  // leaving `live` shuts the server down
            }
        }
        // The shutdown must end on its own; if it has not after 40 s, the
        // client is closed (which frees the server) and the test fails.
        let deadline = clock.now + .seconds(40)
        while clock.now < deadline, !done.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(100)) }
        let held = !done.withLock { $0 }
        silent.withLock { $0?.close() }
        try await shutdown.value
        let began = try #require(ended.withLock { $0 })
        #expect(!held, "the shutdown waited for a client that never reads (\(route))")
        #expect(clock.now - began < .seconds(30), "shutting down took \(clock.now - began)")
        #expect(store.feed.subscriberCount == 0, "the stream let go of its subscription")
    }

    /// A reader that keeps up with a job still queued (its stream would end
    /// only with the job) gets what was sent and the end of the response.
    @Test(.timeLimit(.minutes(1)), arguments: routes.dropFirst())
    func aJobsStreamEndsAtShutdown(route: String) async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: j1")))
        let store = t.yard.store
        let clock = ContinuousClock()
        let started = clock.now
        let reply = Mutex<Task<RawHTTP.Reply, any Error>?>(nil)
        try await t.live { port in
            reply.withLock { $0 = Task { try await RawHTTP.send(port: port, method: "GET", target: route, timeout: 60) } }
            try await eventually("the stream to subscribe", timeout: .seconds(30)) { store.feed.subscriberCount >= 1 }
        }
        let answer = try await #require(reply.withLock { $0 }).value
        #expect(answer.status == 200)
        #expect(clock.now - started < .seconds(20), "shutting down waited \(clock.now - started) for the reader of a queued job")
    }
}

/// Sends a GET on a socket with a 4 KiB receive buffer and never reads.
final class SilentClient: Sendable {
    let fd: Int32

    init(port: Int, target: String) throws {
        fd = try connectLoopback(port: port, receiveBuffer: 4096)
        let request = Array("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    func close() { _ = Glibc.close(fd) }
}
