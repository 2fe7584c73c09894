import Foundation
import Synchronization
import Testing
import YardDomain
import YardTestSupport

/// Issue 7: fifty SSE clients and two hundred concurrent GETs against the
/// embedded SQLite store once stopped the whole server. Here they run while
/// a (scripted) training streams: `/health` must keep answering, every
/// stream must carry every epoch, and the job must end once.
@Suite("Streaming under load")
struct StreamingLoadTests {
    @Test(.timeLimit(.minutes(2))) func fiftyStreamsAndTwoHundredGetsDuringATraining() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let epochs = 40
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: load", epochs: epochs)))
        try await t.live { port in
            let streams = (0..<50).map { _ in
                Task { try await RawHTTP.send(port: port, method: "GET", target: "/api/jobs/load/events", timeout: 60) }
            }
            let logStreams = (0..<10).map { _ in
                Task { try await RawHTTP.send(port: port, method: "GET", target: "/api/jobs/load/logs?follow=true", timeout: 60) }
            }
            let gets = (0..<200).map { i in
                // They must all be answered; how fast is /health's promise, below.
                Task { try await RawHTTP.send(port: port, method: "GET", target: i.isMultiple(of: 2) ? "/api/jobs" : "/api/jobs/load", timeout: 60) }
            }
            let training = Task { try await t.worker(.training(epochs: epochs, stepDelay: .milliseconds(15))).drain() }
            let slowest = Mutex(Duration.zero)
            let clock = ContinuousClock()
            while !training.isCancelled {
                let start = clock.now
                let reply = try await RawHTTP.send(port: port, method: "GET", target: "/health", timeout: 5)
                let took = clock.now - start
                slowest.withLock { $0 = max($0, took) }
                #expect(reply.status == 200)
                if try await t.yard.store.require("load").state.isTerminal { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            try await training.value
            // Debug build, sharing two cores with the other suites: a looser bound than the
            // end-to-end test's 1 s (LoadDuringTrainingTests). The hang it guards against is forever.
            #expect(slowest.withLock { $0 } < .seconds(3), "/health took \(slowest.withLock { $0 })")
            for get in gets { #expect(try await get.value.status == 200) }
            for stream in streams {
                let body = try await stream.value.body
                #expect(body.components(separatedBy: "event: epoch\n").count - 1 == epochs)
                #expect(body.components(separatedBy: #""state":"succeeded""#).count - 1 == 1)
            }
            for stream in logStreams {
                let body = try await stream.value.body
                #expect(body.components(separatedBy: "done\n").count - 1 == epochs, "every log line once")
            }
        }
        let states = try await t.yard.store.events(of: "load", after: 0, limit: 1000).filter { $0.type == "state" }
        #expect(states.compactMap { $0.payload["state"]?.stringValue } == ["queued", "running", "succeeded"])
        #expect(t.yard.store.feed.subscriberCount == 0, "every stream unsubscribed")
    }
}
