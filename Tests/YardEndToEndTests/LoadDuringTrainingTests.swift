import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import Testing
import YardDomain
import YardTestSupport

extension EndToEnd {
/// Issue 7 as the user saw it: `yard up` with a real training, fifty SSE
/// clients and two hundred concurrent GETs. The server stopped answering for
/// good; now `/health` must answer within a second throughout, every stream
/// must carry every epoch, and the job must finish once.
@Suite("Load during a real training")
struct LoadDuringTrainingTests {
    /// Enough connections for every client at once (the shared client keeps eight per host).
    static let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
        connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 400)))

    @Test func fiftyStreamsAndTwoHundredGetsWhileTraining() async throws {
        let h = try YardHarness("load")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 16, val: 4)
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let epochs = 4
        let id = try await yard.submit(TrainingTests.detectConfig(data: data, epochs: epochs))
        let base = yard.base
        func fetch(_ path: String, timeout: TimeAmount = .seconds(300)) async throws -> (Int, String) {
            let response = try await Self.client.execute(HTTPClientRequest(url: base + path), timeout: timeout)
            let body = try await response.body.collect(upTo: 64 << 20)
            return (Int(response.status.code), String(buffer: body))
        }
        let streams = (0..<50).map { _ in Task { try await fetch("/api/jobs/\(id)/events") } }
        let gets = (0..<200).map { i in Task { try await fetch(i.isMultiple(of: 2) ? "/api/jobs" : "/api/jobs/\(id)", timeout: .seconds(60)) } }
        let slowest = Mutex(Duration.zero)
        let clock = ContinuousClock()
        while true {
            let start = clock.now
            let (status, _) = try await fetch("/health", timeout: .seconds(5))
            let took = clock.now - start
            slowest.withLock { $0 = max($0, took) }
            #expect(status == 200)
            if try await yard.job(id)["state"]?.stringValue.flatMap(JobState.init(rawValue:))?.isTerminal == true { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(try await yard.job(id)["state"] == "succeeded")
        #expect(slowest.withLock { $0 } < .seconds(1), "/health took \(slowest.withLock { $0 })")
        for get in gets { #expect(try await get.value.0 == 200) }
        for stream in streams {
            let (status, body) = try await stream.value
            #expect(status == 200)
            #expect(body.components(separatedBy: "event: epoch\n").count - 1 == epochs)
            #expect(body.components(separatedBy: #""state":"succeeded""#).count - 1 == 1)
        }
        let events = try await fetch("/api/jobs/\(id)/events").1
        #expect(events.components(separatedBy: #""state":"running""#).count - 1 == 1, "the job ran once")
    }
}
}
