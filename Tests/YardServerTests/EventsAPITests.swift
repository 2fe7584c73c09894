import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// `GET /api/events`: the one log as Server-Sent Events on a real socket:
/// resumable by `Last-Event-ID` with every event once, filtered, told when
/// it is behind what retention removed, and fifty clients at once.
@Suite("Events API")
struct EventsAPITests {
    struct Frame: Sendable, Equatable {
        var id: Int64?
        var event: String
        var data: JSONValue
    }

    /// A client that opens as many connections as asked (the shared one keeps 8 per host).
    static let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
        connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)))

    /// Opens the stream and reads frames until `count` arrived (or `until` holds), then closes it.
    static func read(port: Int, query: String = "", lastEventID: Int64? = nil, count: Int,
                     timeout: Duration = .seconds(30)) async throws -> [Frame] {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/events\(query)")
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: String(lastEventID)) }
        let response = try await client.execute(request, timeout: .seconds(Int64(timeout.components.seconds)))
        #expect(response.status == .ok)
        #expect(response.headers.first(name: "content-type") == "text/event-stream")
        var frames: [Frame] = []
        var buffer = ""
        let deadline = ContinuousClock.now + timeout
        for try await chunk in response.body {
            buffer += String(buffer: chunk)
            while let end = buffer.range(of: "\n\n") {
                let block = buffer[..<end.lowerBound]
                buffer = String(buffer[end.upperBound...])
                var frame = Frame(id: nil, event: "message", data: .null)
                var isComment = true
                for line in block.split(separator: "\n") {
                    if line.hasPrefix("id: ") { frame.id = Int64(line.dropFirst(4)); isComment = false }
                    if line.hasPrefix("event: ") { frame.event = String(line.dropFirst(7)); isComment = false }
                    if line.hasPrefix("data: ") {
                        frame.data = (try? JSONDecoder().decode(JSONValue.self, from: Data(line.dropFirst(6).utf8))) ?? .null
                        isComment = false
                    }
                }
                if !isComment { frames.append(frame) }
                if frames.count >= count { return frames }
            }
            if ContinuousClock.now > deadline { break }
        }
        return frames
    }

    @Test func aReaderThatReconnectsWithLastEventIDSeesEveryEventOnce() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let store = t.yard.store
        try await t.live { port in
            for n in 0..<20 { try await store.appendEvent(.worker, id: "w1", type: "heartbeat", payload: ["n": .int(n)]) }
            let first = try await Self.read(port: port, count: 12)
            #expect(first.map(\.id) == (1...12).map { Optional(Int64($0)) })
            #expect(first[0].event == "worker.heartbeat")
            #expect(first[0].data["entity"] == "worker" && first[0].data["id"] == "w1" && first[0].data["seq"] == 1)
            #expect(first[0].data["data"]?["n"] == 0)
            // Gone while more events were written; back with the last id it had.
            for n in 20..<30 { try await store.appendEvent(.worker, id: "w1", type: "heartbeat", payload: ["n": .int(n)]) }
            async let rest = Self.read(port: port, lastEventID: first.last?.id, count: 28)
            try await Task.sleep(for: .milliseconds(300))
            // Live ones arrive on the same stream.
            for n in 30..<40 { try await store.appendEvent(.worker, id: "w1", type: "heartbeat", payload: ["n": .int(n)]) }
            let second = try await rest
            let all = (first + second).compactMap { $0.data["data"]?["n"]?.intValue }
            #expect(all == Array(0..<40), "every event once, in order")
        }
    }

    @Test func filtersPickEntityIdTypeAndState() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let store = t.yard.store
        try await store.appendEvent(.model, id: "m", type: "alias", payload: ["alias": "production"])
        try await store.appendEvent(jobID: "j1", type: "state", payload: ["state": "failed"])
        try await store.appendEvent(jobID: "j2", type: "state", payload: ["state": "succeeded"])
        try await store.appendEvent(jobID: "j2", type: "epoch", payload: ["epoch": 1])
        try await t.live { port in
            let models = try await Self.read(port: port, query: "?entity=model&follow=false", count: 10)
            #expect(models.map(\.event) == ["model.alias"])
            let failed = try await Self.read(port: port, query: "?state=failed&follow=false", count: 10)
            #expect(failed.map { $0.data["id"] } == ["j1"])
            let j2 = try await Self.read(port: port, query: "?id=j2&type=epoch&follow=false", count: 10)
            #expect(j2.map(\.event) == ["job.epoch"])
        }
        try await t.test { client in
            for (query, field) in [("entity=robot", "entity"), ("state=melted", "state"), ("type=a;b", "type"), ("after=-1", "after")] {
                try await client.execute(uri: "/api/events?\(query)", method: .get) { response in
                    #expect(response.status == .badRequest, "\(query)")
                    #expect(response.json["field"]?.stringValue == field, "\(query): \(response.text)")
                }
            }
            try await client.execute(uri: "/api/events", method: .get, headers: [HTTPField.Name("Last-Event-ID")!: "abc"]) { response in
                #expect(response.status == .badRequest && response.json["field"] == "Last-Event-ID")
            }
        }
    }

    /// Behind the retained window: one `truncated` event saying from where
    /// the log is whole, then what is left, never a silent gap.
    @Test func aReaderBehindWhatRetentionRemovedIsToldSo() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let store = t.yard.store
        try await store.appendEvent(jobID: "j", type: "state", payload: ["state": "running"])
        for epoch in 1...5 { try await store.appendEvent(jobID: "j", type: "epoch", payload: ["epoch": .int(epoch)]) }
        try await store.appendEvent(jobID: "j", type: "state", payload: ["state": "succeeded"])
        #expect(try await store.pruneEvents(before: Date().addingTimeInterval(60)) == 5)
        try await t.live { port in
            let frames = try await Self.read(port: port, query: "?follow=false", count: 10)
            #expect(frames.map(\.event) == ["truncated", "job.state", "job.state"])
            #expect(frames[0].id == nil, "the notice moves no cursor")
            #expect(frames[0].data["floor"] == 6 && frames[0].data["after"] == 0)
            #expect(frames.dropFirst().map(\.id) == [1, 7])
            // A reader already past the floor is not told.
            let past = try await Self.read(port: port, query: "?after=6&follow=false", count: 10)
            #expect(past.map(\.event) == ["job.state"])
        }
    }

    /// The log never ends, so a server shutting down ends its open streams
    /// (the readers reconnect later with their Last-Event-ID). Before, the
    /// shutdown waited for every reader to leave.
    @Test func aServerShuttingDownEndsOpenStreams() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let started = ContinuousClock.now
        let streams = Mutex<[Task<[Frame], any Error>]>([])
        try await t.live { port in
            streams.withLock { $0 = (0..<3).map { _ in Task { try await Self.read(port: port, count: 1000, timeout: .seconds(120)) } } }
            // Every stream open (a request the server has not begun when it
            // shuts down is reset, as on a loaded machine after a fixed 500 ms).
            try await eventually("the three readers to subscribe", timeout: .seconds(60)) { t.yard.store.feed.subscriberCount == 3 }
            try await t.yard.store.appendEvent(.model, id: "m", type: "alias", payload: [:])
        }
        for stream in streams.withLock({ $0 }) {
            let frames = try await stream.value
            #expect(frames.map(\.event) == ["model.alias"])
        }
        #expect(ContinuousClock.now - started < .seconds(20), "shutting down waited \(ContinuousClock.now - started) for its readers")
    }

    /// Fifty readers at once, each sees the same 100 events in order, and
    /// the server answers a GET meanwhile.
    @Test func fiftyReadersEachSeeEveryEvent() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let store = t.yard.store
        try await t.live { port in
            try await withThrowingTaskGroup(of: [Int64?].self) { group in
                for _ in 0..<50 {
                    group.addTask { try await Self.read(port: port, count: 100, timeout: .seconds(60)).map(\.id) }
                }
                try await Task.sleep(for: .milliseconds(500))
                for n in 0..<100 { try await store.appendEvent(.dataset, id: "d", type: "version", payload: ["number": .int(n)]) }
                let health = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/health"), timeout: .seconds(10))
                #expect(health.status == .ok)
                var readers = 0
                for try await ids in group {
                    #expect(ids == (1...100).map { Optional(Int64($0)) })
                    readers += 1
                }
                #expect(readers == 50)
            }
        }
        #expect(t.yard.store.feed.subscriberCount == 0, "every closed stream let go of its subscription")
    }
}
