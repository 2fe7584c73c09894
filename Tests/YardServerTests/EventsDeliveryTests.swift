import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import YardDomain
@testable import YardServer
import YardStore
import YardTestSupport

/// How `/api/events` hands new events to its readers (`EventReader`): a
/// bounded buffer per reader, written by the connection's event loop while
/// the reader keeps up and by the request's task (with backpressure, or
/// from the store) when it does not. The readers here are raw sockets, so
/// that one can stop reading with a small receive buffer.
@Suite("Events API delivery")
struct EventsDeliveryTests {
    static func tick(_ id: Int64, _ type: String = "tick") -> JobEvent {
        JobEvent(id: id, jobID: "w", type: type, payload: ["n": .int(Int(id))], time: Date(timeIntervalSince1970: 0), entity: .worker)
    }

    static func ids(_ items: [EventReader.Item]) -> [Int64] {
        items.flatMap { item -> [Int64] in
            if case .events(let events) = item { return events.map(\.id) }
            return []
        }
    }

    /// A reader holds at most its limit: past it, what it held is dropped,
    /// nothing more is held, and its task is told to read the store from
    /// its cursor (never a silent gap). It goes on holding once told.
    @Test func aReaderHoldsAtMostItsLimitThenIsSentToTheStore() async {
        let reader = EventReader(connection: nil, fanout: EventFanout(), filter: EventFilter(), limit: 10)
        reader.deliver((1...6).map { Self.tick($0) })
        reader.deliver((7...10).map { Self.tick($0) })
        var (items, overflowed) = reader.take()
        #expect(!overflowed && Self.ids(items) == Array(1...10))

        reader.deliver((11...15).map { Self.tick($0) })
        reader.deliver((16...26).map { Self.tick($0) })  // 16 held would pass the limit
        reader.deliver([Self.tick(27)])
        reader.heartbeat()
        (items, overflowed) = reader.take()
        #expect(overflowed && items.isEmpty, "dropped, and the task is told")
        // Told and following again: an overflow while it waits wakes it at once.
        reader.deliver([Self.tick(28)])
        (items, overflowed) = reader.take()
        #expect(!overflowed && Self.ids(items) == [28])
        async let woken = reader.follow(from: 28)
        reader.deliver((29...50).map { Self.tick($0) })
        let (handback, cursor) = await woken
        #expect(handback == .more && cursor == 28)
        (items, overflowed) = reader.take()
        #expect(overflowed && items.isEmpty)
    }

    /// With no connection to write into (the router test framework), the
    /// task waits for each commit; a close ends the wait.
    @Test func withoutAConnectionTheTaskWaitsForEachCommitUntilClosed() async {
        let reader = EventReader(connection: nil, fanout: EventFanout(), filter: EventFilter(types: ["tick"]), limit: 100)
        async let first = reader.follow(from: 0)
        try? await Task.sleep(for: .milliseconds(50))
        reader.deliver([Self.tick(1), Self.tick(2, "other"), Self.tick(3)])
        #expect(await first == (.more, 0))
        let (items, overflowed) = reader.take()
        #expect(!overflowed)
        let text = try? reader.render(items, after: 1).map { String(buffer: $0) }
        #expect(text?.contains("id: 3\n") == true && text?.contains("id: 2\n") == false && text?.contains("id: 1\n") == false,
                "after the cursor, through the filter: \(text ?? "nil")")
        #expect(EventReader.last(items, after: 0) == 3)
        async let ended = reader.follow(from: 3)
        try? await Task.sleep(for: .milliseconds(50))
        reader.close()
        #expect(await ended == (.closed, 3))
        reader.deliver([Self.tick(4)])
        #expect(reader.take().items.isEmpty, "nothing is held once closed")
        #expect(await reader.follow(from: 3).0 == .closed)
    }

    /// A lone frame goes out as encoded for every reader (shared, not
    /// copied); several are joined in order.
    @Test func framesAreEncodedOnceAndJoinedInOrder() throws {
        let fanout = EventFanout()
        let one = EventReader(connection: nil, fanout: fanout, filter: EventFilter(), limit: 10)
        let two = EventReader(connection: nil, fanout: fanout, filter: EventFilter(), limit: 10)
        let a = try #require(try one.render([.events([Self.tick(1)])], after: 0))
        let b = try #require(try two.render([.events([Self.tick(1)])], after: 0))
        #expect(a.withUnsafeReadableBytes { $0.baseAddress } == b.withUnsafeReadableBytes { $0.baseAddress }, "one encoding, shared")
        let joined = try #require(try one.render([.events([Self.tick(1), Self.tick(2)]), .keepAlive, .events([Self.tick(3)])], after: 0))
        let text = String(buffer: joined)
        #expect(text.hasPrefix(String(buffer: a)))
        let order = ["id: 1\n", "id: 2\n", ": keep-alive\n\n", "id: 3\n"].map { text.range(of: $0)?.lowerBound }
        #expect(order.allSatisfy { $0 != nil } && order.map { $0! } == order.map { $0! }.sorted(), "\(text)")
    }

    /// A reader that stops reading (a 4 KiB receive buffer, nothing read)
    /// while 2,000 events of 4 KB are written (8 MB, far more than its
    /// socket holds): another reader keeps getting every event live
    /// meanwhile; the stalled one, once it reads, gets every event once, in
    /// order, from where it stopped. With a limit of 64 events it passes it
    /// and reads the store again; with 10,000 its connection fills first,
    /// and the task writes what is held, waiting for the client.
    /// (A time limit: a reader that misses an event waits for it, and the
    /// AsyncHTTPClient reader checks its own deadline only when a chunk comes.)
    @Test(.timeLimit(.minutes(4)), arguments: [64, 10_000])
    func aReaderThatStopsReadingIsHandedBackAndMissesNothing(limit: Int) async throws {
        let dir = try TemporaryDirectory("events-stalled")
        defer { dir.remove() }
        let store = SQLiteJobStore(database: try YardDatabase(path: dir.file("yard.sqlite")), feed: JobFeed(bufferLimit: limit))
        let t = try TestYard(store: store, directory: dir.path)
        let total = 2000
        let pad = String(repeating: "x", count: 4000)
        try await t.live { port in
            let stalled = try SSESocket(port: port, path: "/api/events?type=tick", receiveBuffer: 4096)
            defer { stalled.close() }
            async let live = EventsAPITests.read(port: port, query: "?type=tick", count: total, timeout: .seconds(120))
            try await eventually("both readers to subscribe", timeout: .seconds(30)) { store.feed.subscriberCount >= 2 }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        for n in 0..<(total / 4) {
                            try await store.appendEvent(.worker, id: "w\(writer)", type: "tick", payload: ["n": .int(n), "pad": .string(pad)])
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await live.map(\.id) == (1...Int64(total)).map { Optional($0) }, "the reader that kept up got every event, in order")
            let ids = try await stalled.readIDs(count: total, timeout: .seconds(120))
            #expect(ids == Array(1...Int64(total)), "the stalled reader, once it read, got every event once, in order")
        }
    }
}

/// An `/api/events` reader on a raw socket with a receive buffer of the
/// size asked, that reads only when told to.
final class SSESocket: @unchecked Sendable {
    let fd: Int32

    init(port: Int, path: String, receiveBuffer: Int32) throws {
        fd = try connectLoopback(port: port, receiveBuffer: receiveBuffer)
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else {
            throw RawHTTP.Failure(description: "cannot send the request")
        }
    }

    func close() { Glibc.close(fd) }

    /// Reads the response (HTTP/1.1 chunked) until `count` events came, on a thread of its own: their ids.
    func readIDs(count: Int, timeout: Duration) async throws -> [Int64] {
        let fd = self.fd
        let seconds = Int(timeout.components.seconds)
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try Self.read(fd: fd, count: count, seconds: seconds) })
            }.start()
        }
    }

    private static func read(fd: Int32, count: Int, seconds: Int) throws -> [Int64] {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var raw: [UInt8] = []
        var body: [UInt8] = []  // the de-chunked stream
        var headerDone = false
        var ids: [Int64] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var scanned = 0  // bytes of `body` whose frames were counted
        while ids.count < count {
            let n = Glibc.read(fd, &buffer, buffer.count)
            guard n > 0 else { throw RawHTTP.Failure(description: "the stream ended after \(ids.count) of \(count) events") }
            raw.append(contentsOf: buffer[0..<n])
            if !headerDone {
                guard let end = Self.find([13, 10, 13, 10], in: raw, from: 0) else { continue }
                raw.removeFirst(end + 4)
                headerDone = true
            }
            // Whole chunks: SIZE\r\nDATA\r\n.
            while let lineEnd = Self.find([13, 10], in: raw, from: 0) {
                guard let size = Int(String(decoding: raw[..<lineEnd], as: UTF8.self), radix: 16) else {
                    throw RawHTTP.Failure(description: "not a chunk size: \(String(decoding: raw.prefix(40), as: UTF8.self))")
                }
                guard raw.count >= lineEnd + 2 + size + 2 else { break }
                body.append(contentsOf: raw[(lineEnd + 2)..<(lineEnd + 2 + size)])
                raw.removeFirst(lineEnd + 2 + size + 2)
            }
            // Whole frames: each ends with a blank line.
            while let end = Self.find([10, 10], in: body, from: scanned) {
                let frame = String(decoding: body[scanned..<end], as: UTF8.self)
                for line in frame.split(separator: "\n") where line.hasPrefix("id: ") {
                    if let id = Int64(line.dropFirst(4)) { ids.append(id) }
                }
                scanned = end + 2
            }
            if scanned > 1 << 20 {
                body.removeFirst(scanned)
                scanned = 0
            }
        }
        return ids
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        var i = start
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0], Array(haystack[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}
