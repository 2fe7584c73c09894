import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization
import YardDomain
import YardStore

/// How `/api/events` hands each new event to its readers. Every reader is
/// a sink of the feed (`EventReader`): a commit costs it one append to a
/// bounded buffer. A reader on a socket of this server is then *live*: what
/// it holds is written straight into its connection on the connection's
/// event loop, with no task woken for it. Each event loop is hopped to once
/// for all its readers that have something pending (`LoopDrain`), and each
/// reader gets one write and one flush for everything it holds. A frame is
/// encoded once for every reader (`EventFrames`); a lone frame is shared,
/// not copied. The request's task does what waits: reading the store
/// (catching up, and after the buffer overflowed) and writing with
/// backpressure to a reader that does not keep up.
final class EventFanout: Sendable {
    let frames: EventFrames
    private let drains = Mutex<[ObjectIdentifier: LoopDrain]>([:])

    init(frames: EventFrames = EventFrames()) { self.frames = frames }

    /// The drain of `loop`, made on first use (a server has one per event loop).
    func drain(for loop: any EventLoop) -> LoopDrain {
        drains.withLock { drains in
            if let drain = drains[ObjectIdentifier(loop)] { return drain }
            let drain = LoopDrain(loop: loop)
            drains[ObjectIdentifier(loop)] = drain
            return drain
        }
    }

    /// `channel` when it is an HTTP/1 connection whose response goes out
    /// through its pipeline, so that a body part written into the channel
    /// reaches the client; nil where it does not (the router test framework
    /// hands requests a stand-in channel).
    static func directConnection(_ channel: any Channel) async -> (any Channel)? {
        let found = try? await channel.eventLoop.submit {
            (try? channel.pipeline.syncOperations.handler(type: HTTPResponseEncoder.self)) != nil
        }.get()
        return found == true ? channel : nil
    }
}

/// The readers of one event loop with something to write: the first one
/// queued schedules one run on the loop, which flushes them all.
final class LoopDrain: Sendable {
    let loop: any EventLoop
    private let queue = Mutex<(readers: [EventReader], scheduled: Bool)>(([], false))

    init(loop: any EventLoop) { self.loop = loop }

    func add(_ reader: EventReader) {
        let schedule = queue.withLock { queue -> Bool in
            queue.readers.append(reader)
            defer { queue.scheduled = true }
            return !queue.scheduled
        }
        if schedule { loop.execute { self.run() } }
    }

    private func run() {
        var readers: [EventReader] = []
        queue.withLock { queue in
            swap(&readers, &queue.readers)
            queue.scheduled = false
        }
        for reader in readers { reader.flush() }
    }
}

/// One `/api/events` reader following the log: the feed's sink, a bounded
/// buffer of what was committed since, and who writes it.
///
/// - `task`: the request's task writes (catching up from the store, or
///   what is held) through the response writer, which waits while the
///   client's socket is full. Commits are held meanwhile.
/// - `waiting` (no direct connection): the task waits for the next commit.
/// - `activating`, then `live`: the task has handed the stream to the
///   event loop, which writes each commit directly. The hand-over runs on
///   the loop, queued after the task's last write, so no direct write can
///   overtake it.
/// - `closed`: the client left, the server is shutting down, or the task
///   ended.
///
/// The event loop hands the stream back to the task (`Handback.more`)
/// when the connection's outbound buffer is full (the client reads slower
/// than the log grows): what is held then goes through the writer, which
/// waits for the client. More than `limit` events held (the loop or the
/// client is that far behind) drops them and marks the reader overflowed:
/// the task reads the store again from its cursor, as a lagging feed
/// subscriber does. A reader that does not read costs at most `limit`
/// events plus its socket's buffer.
final class EventReader: JobFeed.Sink {
    enum Handback: Sendable, Equatable {
        /// The task writes next: what is held, or (overflowed) the store.
        case more
        case closed
    }

    enum Item: Sendable {
        case events([JobEvent])
        case keepAlive
    }

    enum Phase {
        case task, waiting, activating, live, closed
    }

    struct State {
        var phase = Phase.task
        var items: [Item] = []
        /// Events in `items`.
        var held = 0
        var overflowed = false
        /// Queued on the loop's drain.
        var queued = false
        /// The last event handled (written, or skipped by the filter).
        var cursor: Int64 = 0
        /// Which hand-over to the loop is current (an older one queued on the loop does nothing).
        var activation = 0
        var waiter: CheckedContinuation<Handback, Never>?

        /// The stream goes back to its task (or ends); the waiter to resume, outside the lock.
        mutating func handBack(_ reason: Handback) -> Wake? {
            if phase != .closed { phase = reason == .closed ? .closed : .task }
            guard let waiter else { return nil }
            self.waiter = nil
            return Wake(continuation: waiter, reason: phase == .closed ? .closed : reason)
        }
    }

    struct Wake {
        let continuation: CheckedContinuation<Handback, Never>
        let reason: Handback
        func resume() { continuation.resume(returning: reason) }
    }

    private let state = Mutex(State())
    /// The connection the loop writes into while live; nil: the task writes everything.
    let connection: (any Channel)?
    let drain: LoopDrain?
    let filter: EventFilter
    let frames: EventFrames
    let limit: Int

    init(connection: (any Channel)?, fanout: EventFanout, filter: EventFilter, limit: Int) {
        self.connection = connection
        self.drain = connection.map { fanout.drain(for: $0.eventLoop) }
        self.filter = filter
        self.frames = fanout.frames
        self.limit = limit
    }

    // MARK: The feed's side (the committing thread)

    func deliver(_ events: [JobEvent]) {
        hold(.events(events), count: events.count)
    }

    func heartbeat() {
        hold(.keepAlive, count: 0)
    }

    private func hold(_ item: Item, count: Int) {
        var wake: Wake?
        let queue = state.withLock { state -> Bool in
            guard state.phase != .closed, !state.overflowed else { return false }
            if case .keepAlive = item, !state.items.isEmpty { return false }  // something is on its way anyway
            guard state.held + count <= limit else {
                state.overflowed = true
                state.items = []
                state.held = 0
                if state.phase != .task { wake = state.handBack(.more) }
                return false
            }
            state.items.append(item)
            state.held += count
            switch state.phase {
            case .live where !state.queued:
                state.queued = true
                return true
            case .waiting:
                wake = state.handBack(.more)
                return false
            default:
                return false
            }
        }
        wake?.resume()
        if queue { drain?.add(self) }
    }

    // MARK: The task's side

    /// What is held, and whether some of it was dropped (then read the store
    /// from the cursor); only while the task writes.
    func take() -> (items: [Item], overflowed: Bool) {
        state.withLock { state in
            var items: [Item] = []
            swap(&items, &state.items)
            state.held = 0
            defer { state.overflowed = false }
            return (items, state.overflowed)
        }
    }

    /// Hands the stream, written up to `cursor`, to the event loop (or, with
    /// no direct connection, waits for the next commit) until the task has
    /// to write again or the stream ends. Returns why, and the cursor.
    func follow(from cursor: Int64) async -> (Handback, Int64) {
        let reason = await withCheckedContinuation { (continuation: CheckedContinuation<Handback, Never>) in
            let action = state.withLock { state -> (activation: Int, wake: Handback?) in
                if state.phase == .closed { return (0, .closed) }
                state.cursor = cursor
                if state.overflowed || (connection == nil && !state.items.isEmpty) { return (0, .more) }
                state.waiter = continuation
                guard connection != nil else {
                    state.phase = .waiting
                    return (0, nil)
                }
                state.phase = .activating
                state.activation += 1
                return (state.activation, nil)
            }
            if let wake = action.wake { return continuation.resume(returning: wake) }
            if action.activation > 0, let loop = drain?.loop {
                // Queued after the task's last write through the response writer.
                loop.execute { self.activate(action.activation) }
            }
        }
        return (reason, state.withLock { $0.cursor })
    }

    /// Ends the stream: the client left, the server shuts down, or the task ends.
    func close() {
        let wake = state.withLock { state -> Wake? in
            state.items = []
            state.held = 0
            return state.handBack(.closed)
        }
        wake?.resume()
    }

    // MARK: The event loop's side

    private func activate(_ activation: Int) {
        let flush = state.withLock { state -> Bool in
            guard state.phase == .activating, state.activation == activation else { return false }
            state.phase = .live
            return !state.items.isEmpty
        }
        if flush { self.flush() }
    }

    /// On the connection's loop: writes what is held in one write, or hands
    /// the stream back to the task when the connection cannot take more.
    func flush() {
        guard let connection else { return }
        var wake: Wake?
        let taken = state.withLock { state -> (items: [Item], after: Int64)? in
            state.queued = false
            guard state.phase == .live, !state.items.isEmpty else { return nil }
            guard connection.isWritable else {
                wake = state.handBack(.more)
                return nil
            }
            let after = state.cursor
            var items: [Item] = []
            swap(&items, &state.items)
            state.held = 0
            state.cursor = Self.last(items, after: after)
            return (items, after)
        }
        wake?.resume()
        guard let taken else { return }
        do {
            guard let buffer = try render(taken.items, after: taken.after) else { return }
            connection.write(HTTPResponsePart.body(buffer), promise: nil)
            connection.flush()
        } catch {
            // An event that cannot be encoded cannot be skipped silently: the
            // reader reconnects with its Last-Event-ID and is told why.
            connection.close(promise: nil)
        }
    }

    // MARK: Frames

    /// The last event id in `items`, or `after`.
    static func last(_ items: [Item], after: Int64) -> Int64 {
        for item in items.reversed() {
            if case .events(let events) = item, let last = events.last { return max(after, last.id) }
        }
        return after
    }

    /// The frames of `items` after `cursor` that the filter takes, in one
    /// buffer (a lone frame as encoded, shared with the other readers); nil
    /// when there is nothing to write.
    func render(_ items: [Item], after cursor: Int64) throws -> ByteBuffer? {
        var out: ByteBuffer?
        var parts = 0
        func add(_ frame: ByteBuffer) {
            parts += 1
            if parts == 1 { return out = frame }
            if parts == 2 {
                var joined = ByteBuffer()
                joined.reserveCapacity(out!.readableBytes * 4)
                joined.writeImmutableBuffer(out!)
                out = joined
            }
            out!.writeImmutableBuffer(frame)
        }
        var cursor = cursor
        for item in items {
            switch item {
            case .events(let events):
                for event in events where event.id > cursor {
                    cursor = event.id
                    if filter.matches(event) { add(try frames.frame(event)) }
                }
            case .keepAlive:
                add(Self.keepAlive)
            }
        }
        return out
    }

    static let keepAlive = ByteBuffer(string: ": keep-alive\n\n")
}
