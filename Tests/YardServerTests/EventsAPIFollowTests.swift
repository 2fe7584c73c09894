import Foundation
import Synchronization
import Testing
import YardDomain
import YardStore
import YardTestSupport
@testable import YardServer

/// `GET /api/events` while the log is being written: readers that come and
/// go with `Last-Event-ID`, fifty that connect while writers append, a
/// reader resuming from below what retention removed, and the experiment
/// filter. The stream writes what a reader has pending in one write, with
/// each frame encoded once for all readers: none of that may lose, repeat
/// or reorder an event.
@Suite("Events API while writing")
struct EventsAPIFollowTests {
    typealias Frame = EventsAPITests.Frame

    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
    }

    /// Four writers append until the reader has reconnected ten times
    /// (taking 25 events a connection, then leaving); then it reads the
    /// rest. Across the reconnects it saw every event once, in order.
    @Test func aReaderReconnectingWithLastEventIDWhileWritersAppendSeesEveryEventOnce() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let store = t.yard.store
        try await t.live { port in
            let reconnected = Flag()
            let writers = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<4 {
                        group.addTask {
                            var n = 0
                            // At least 100 each, and on until the reader is done coming and going.
                            while n < 100 || !reconnected.isSet {
                                try await store.appendEvent(.worker, id: "w\(writer)", type: "tick", payload: ["w": .int(writer), "n": .int(n)])
                                n += 1
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            var frames: [Frame] = []
            for _ in 0..<10 {
                frames += try await EventsAPITests.read(port: port, lastEventID: frames.last?.id ?? 0, count: 25)
            }
            reconnected.set()
            try await writers.value
            frames += try await EventsAPITests.read(port: port, query: "?follow=false", lastEventID: frames.last?.id ?? 0, count: 1_000_000)
            let ids = frames.compactMap(\.id)
            let total = try await store.events(after: 0, limit: 1_000_000, filter: .all).count
            #expect(total >= 400)
            #expect(ids == Array(1...Int64(total)), "every event once, in order, across ten reconnects")
            for writer in 0..<4 {
                let mine = frames.filter { $0.data["data"]?["w"]?.intValue == writer }.compactMap { $0.data["data"]?["n"]?.intValue }
                #expect(mine == Array(0..<mine.count), "writer \(writer)'s events in its order")
            }
        }
    }

    /// Fifty readers connect while three writers append 300 events: each
    /// reader gets all 300, once, in the log's order, whether it caught them
    /// up from the store or live.
    @Test func fiftyReadersConnectingWhileWritersAppendEachGetEveryEventInOrder() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let store = t.yard.store
        try await t.live { port in
            try await withThrowingTaskGroup(of: [Int64?].self) { group in
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { writers in
                        for writer in 0..<3 {
                            writers.addTask {
                                for n in 0..<100 { try await store.appendEvent(.worker, id: "w\(writer)", type: "tick", payload: ["n": .int(n)]) }
                            }
                        }
                        try await writers.waitForAll()
                    }
                    return []
                }
                for _ in 0..<50 {
                    group.addTask { try await EventsAPITests.read(port: port, count: 300, timeout: .seconds(120)).map(\.id) }
                }
                var readers = 0
                for try await ids in group where !ids.isEmpty {
                    #expect(ids == (1...300).map { Optional(Int64($0)) })
                    readers += 1
                }
                #expect(readers == 50)
            }
        }
    }

    /// A following reader that resumes from below what retention removed
    /// is told once (one `truncated` event naming the floor), then gets what
    /// is left and what is written next, with no second notice.
    @Test func aFollowingReaderBehindTheRetainedWindowIsToldOnceThenFollows() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let store = t.yard.store
        try await store.appendEvent(jobID: "j", type: "state", payload: ["state": "running"])
        for epoch in 1...5 { try await store.appendEvent(jobID: "j", type: "epoch", payload: ["epoch": .int(epoch)]) }
        #expect(try await store.pruneEvents(before: Date().addingTimeInterval(60)) == 5)
        try await t.live { port in
            async let frames = EventsAPITests.read(port: port, lastEventID: 2, count: 4)
            try await eventually("the reader to subscribe", timeout: .seconds(30)) { store.feed.subscriberCount > 0 }
            for n in 0..<3 { try await store.appendEvent(.worker, id: "w", type: "tick", payload: ["n": .int(n)]) }
            let got = try await frames
            #expect(got.map(\.event) == ["truncated", "worker.tick", "worker.tick", "worker.tick"])
            #expect(got.first?.data["floor"] == 6 && got.first?.data["after"] == 2)
            #expect(got.dropFirst().map(\.id) == [7, 8, 9])
        }
    }

    /// `?experiment=` keeps the events of that experiment's jobs and sweeps,
    /// read back and live; each carries its experiment; a bad value is a 400
    /// naming the field.
    @Test func theExperimentFilterKeepsOneExperimentsEvents() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let store = t.yard.store
        let parser = JobConfigParser { _ in true }
        for (id, experiment) in [("a1", "alpha"), ("b1", "beta")] {
            let config = try parser.parse("model: yolov8n.yaml\ntask_id: \(id)\nexperiment: \(experiment)\ntrain: {data: /d.yaml, epochs: 3}")
            try await store.insert(Job(id: id, config: config, redacted: Redaction.redact(config.json), createdAt: Date()), secrets: [:])
        }
        try await store.appendEvent(jobID: "a1", type: "state", payload: ["state": "running"])
        try await store.appendEvent(jobID: "b1", type: "state", payload: ["state": "running"])
        try await t.live { port in
            async let alpha = EventsAPITests.read(port: port, query: "?experiment=alpha", count: 2)
            try await eventually("the reader to subscribe", timeout: .seconds(30)) { store.feed.subscriberCount > 0 }
            try await store.appendEvent(jobID: "b1", type: "epoch", payload: ["epoch": 1])
            try await store.appendEvent(jobID: "a1", type: "epoch", payload: ["epoch": 1])
            let frames = try await alpha
            #expect(frames.map(\.event) == ["job.state", "job.epoch"])
            #expect(frames.map { $0.data["id"] } == ["a1", "a1"] && frames.allSatisfy { $0.data["experiment"] == "alpha" })
        }
        try await t.test { client in
            try await client.execute(uri: "/api/events?experiment=", method: .get) { response in
                #expect(response.status == .badRequest && response.json["field"] == "experiment", "\(response.text)")
            }
        }
    }

    /// A query is read as browsers and HTTP clients encode it: `+` is a space
    /// and `%2B` a plus (URLSearchParams, HTML forms, Python's requests). The
    /// dashboard's sweep page followed `experiment=my+run` and, read as
    /// "my+run", never got one event of the experiment "my run".
    @Test func aQueryIsFormDecodedPlusAsSpace() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let parser = JobConfigParser { _ in true }
        for (id, experiment) in [("s1", "my run+1"), ("p1", "my+run+1")] {
            let config = try parser.parse("model: yolov8n.yaml\ntask_id: \(id)\nexperiment: '\(experiment)'\ntrain: {data: /d.yaml, epochs: 3}")
            try await t.yard.store.insert(Job(id: id, config: config, redacted: Redaction.redact(config.json), createdAt: Date()), secrets: [:],
                                          recording: ["state": "queued"])
        }
        try await t.test { client in
            for (query, id) in [("experiment=my+run%2B1", "s1"), ("experiment=my%20run%2B1", "s1"), ("experiment=my%2Brun%2B1", "p1")] {
                try await client.execute(uri: "/api/events?follow=false&\(query)", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.text.contains("\"id\":\"\(id)\""), "\(query): \(response.text)")
                    #expect(!response.text.contains("\"id\":\"\(id == "s1" ? "p1" : "s1")\""), "\(query): \(response.text)")
                }
            }
        }
        #expect(Query.formDecoded("a+b%2Bc%20d") == "a b+c d")
        #expect(Query.formDecoded("100%") == "100%", "a stray % is kept as it is")
    }
}
