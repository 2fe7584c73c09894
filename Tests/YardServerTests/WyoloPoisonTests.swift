import Foundation
import Testing
import YardDomain
import YardQueue
import YardRedis
import YardStore
import YardTestSupport

/// Issue 26, findings 4 and 12: one wyolo message jammed the bridge for
/// good (its failed job could not be stored, the error escaped, and it was
/// taken again every second, with every message behind it waiting), and a
/// 100 MB field was stored whole (database, `/api/jobs`, one log line).
@Suite("Wyolo poison messages")
struct WyoloPoisonTests {
    typealias Bridge = DistributedPartsTests.Bridge

    @Test func aMessageWhoseIdDiffersInCaseOnlyIsSetAsideAndTheNextOneTrains() async throws {
        let b = try await Bridge()
        defer { b.remove() }
        let good = b.configs.file("job.yaml")
        _ = try await b.redis.send(["RPUSH", "training_queue", #"{"task_id": "rprobe-ok-1", "config_path": "\#(good)"}"#])
        try await b.bridge.step()
        #expect(try await b.store.job("rprobe-ok-1") != nil)
        // The probe's message, then a valid one behind it.
        _ = try await b.redis.send(["RPUSH", "training_queue", #"{"task_id":"RPROBE-OK-1"}"#])
        _ = try await b.redis.send(["RPUSH", "training_queue", #"{"task_id": "next-1", "config_path": "\#(good)"}"#])
        for _ in 0..<3 { try await b.bridge.step() }
        #expect(try await b.redis.send(["LLEN", "yard:wyolo:processing"]).int == 0, "the message is not left to be taken again")
        let dead = try await b.redis.send(["LRANGE", b.bridge.deadLetters, "0", "-1"]).array?.compactMap(\.string) ?? []
        #expect(dead.count == 1)
        let letter = try JSONDecoder().decode(JSONValue.self, from: Data((dead.first ?? "{}").utf8))
        #expect(letter["message"]?.stringValue == #"{"task_id":"RPROBE-OK-1"}"#)
        #expect(letter["reason"]?.stringValue?.contains("no config_path") == true, "\(letter)")
        // The message behind it was not held up: it runs to the end.
        #expect(try await b.store.job("next-1")?.state == .queued)
        try await b.t.worker(.training(epochs: 2)).drain()
        #expect(try await b.store.job("next-1")?.state == .succeeded)
    }

    @Test func aHugeFieldIsRefusedNamingTheLimitAndNothingLargeIsStored() async throws {
        let b = try await Bridge()
        defer { b.remove() }
        let path = "/" + String(repeating: "a", count: 5000)
        let huge = String(repeating: "x", count: 2 << 20)
        _ = try await b.redis.send(["XADD", "training_queue", "*", "task_id", "big-1", "config_path", path])
        try await b.bridge.step()  // makes the bridge's consumer group
        try await b.bridge.step()
        _ = try await b.redis.send(["DEL", "training_queue"])
        _ = try await b.redis.send(["RPUSH", "training_queue", #"{"task_id": "big-2", "config_path": "/\#(huge)"}"#])
        try await b.bridge.step()
        let one = try #require(try await b.store.job("big-1"))
        #expect(one.state == .failed && one.message == "config_path: 5001 bytes; at most 4096", "\(one.message ?? "")")
        // Too large to be read, so its task id is not taken from it: it gets an id of its own.
        let two = try #require(try await b.store.jobs(in: [.failed]).first { $0.id != "big-1" })
        #expect(two.message?.hasPrefix("message: the wyolo message is 2097") == true && two.message?.hasSuffix("bytes; at most 65536") == true, "\(two.message ?? "")")
        for job in [one, two] {
            let stored = String(decoding: try JSONEncoder().encode(job), as: UTF8.self)
            #expect(stored.utf8.count < 16 << 10, "job \(job.id) is stored with \(stored.utf8.count) bytes")
        }
        #expect(try await b.redis.send(["LLEN", "yard:wyolo:processing"]).int == 0)
    }

    @Test func aStoredLogLineIsCutAndSaysSo() async throws {
        let dir = try TemporaryDirectory("log-cut")
        defer { dir.remove() }
        for store in [MemoryJobStore() as any JobStore, SQLiteJobStore(database: try YardDatabase(path: dir.file("yard.sqlite")))] {
            let line = String(repeating: "é", count: 20_000)  // 40,000 bytes
            let stored = try await store.appendLog(jobID: "j", lines: [line, "short"])
            #expect(stored[0].line.utf8.count < LogLine.maxBytes + 40)
            #expect(stored[0].line.hasSuffix("(23616 more bytes cut)"), "\(stored[0].line.suffix(40))")
            #expect(stored[1].line == "short")
        }
    }
}
