import Foundation
import Synchronization
import YardDomain

/// What a store has committed, broadcast in process: each job's events and
/// log lines, in commit order, to every subscriber of that job. Streams
/// (SSE, `logs -f`) subscribe first, read the store once to catch up from
/// their cursor, then take what the feed delivers: no client polls.
///
/// A subscriber that falls `bufferLimit` items behind is not waited for:
/// further items are dropped for it and its next item is `.lagged`, which
/// tells it to read the store from its cursor again.
public final class JobFeed: Sendable {
    public enum Item: Sendable, Equatable {
        case event(JobEvent)
        case logs([LogLine])
        /// Items were dropped for this subscriber: read the store from your cursor.
        case lagged
        /// Nothing was delivered for a while (streams send a keep-alive).
        case heartbeat
    }

    public let bufferLimit: Int
    let heartbeat: Duration
    private let state = Mutex(State())

    struct State {
        var subscribers: [String: [UInt64: Subscriber]] = [:]
        /// Subscribers to the whole log (every entity's events, no log lines).
        var everything: [UInt64: Subscriber] = [:]
        /// Subscribers to the whole log called in line by `publish`.
        var sinks: [UInt64: any Sink] = [:]
        var nextID: UInt64 = 0
        var ticker: Task<Void, Never>?
        var count: Int { subscribers.values.reduce(0) { $0 + $1.count } + everything.count + sinks.count }
        var isEmpty: Bool { subscribers.isEmpty && everything.isEmpty && sinks.isEmpty }

        /// The ticker to cancel once nobody is subscribed.
        mutating func stopTicker() -> Task<Void, Never>? {
            guard isEmpty else { return nil }
            defer { ticker = nil }
            return ticker
        }
    }

    /// A subscriber to the whole log that `publish` calls in line, on the
    /// committing thread, in commit order: for a reader that keeps its own
    /// bounded buffer and wakes its own writer (`/api/events` on a socket:
    /// one event-loop hop per commit for all its readers, instead of one
    /// task wake-up per reader per event). It must return at once: no
    /// blocking, no waiting, no store access.
    public protocol Sink: AnyObject, Sendable {
        /// The events of one commit, in order.
        func deliver(_ events: [JobEvent])
        /// Nothing was delivered for a while (the feed's one timer).
        func heartbeat()
    }

    /// A sink's subscription; cancelling it (more than once is fine) stops the calls.
    public final class Tap: Sendable {
        private let cancelling: @Sendable () -> Void
        init(_ cancel: @escaping @Sendable () -> Void) { cancelling = cancel }
        public func cancel() { cancelling() }
    }

    /// - Parameters:
    ///   - bufferLimit: items held for one slow subscriber before it lags.
    ///   - heartbeat: how often idle subscribers get `.heartbeat` (one timer for all).
    public init(bufferLimit: Int = 1024, heartbeat: Duration = .seconds(15)) {
        self.bufferLimit = bufferLimit
        self.heartbeat = heartbeat
    }

    deinit { state.withLock { $0.ticker?.cancel() } }

    /// Subscribes to one job. Subscribe before reading the store, so nothing
    /// committed in between is missed (items already read are skipped by id).
    public func subscribe(_ jobID: String) -> Subscription {
        let (stream, continuation) = AsyncStream<Item>.makeStream(bufferingPolicy: .bufferingOldest(bufferLimit))
        let subscriber = Subscriber(continuation: continuation)
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            state.subscribers[jobID, default: [:]][state.nextID] = subscriber
            if state.ticker == nil { state.ticker = startTicker() }
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in self?.remove(jobID, id) }
        return Subscription(stream: stream, subscriber: subscriber)
    }

    /// Subscribes to the whole log: every event of every entity, in commit
    /// order (no log lines). Subscribe before reading the store, as for a job.
    public func subscribeAll() -> Subscription {
        let (stream, continuation) = AsyncStream<Item>.makeStream(bufferingPolicy: .bufferingOldest(bufferLimit))
        let subscriber = Subscriber(continuation: continuation)
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            state.everything[state.nextID] = subscriber
            if state.ticker == nil { state.ticker = startTicker() }
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in self?.remove(nil, id) }
        return Subscription(stream: stream, subscriber: subscriber)
    }

    /// Subscribes `sink` to the whole log: every event of every entity, in
    /// commit order, delivered in line by `publish`. Subscribe before reading
    /// the store, as for a job.
    public func subscribeAll(_ sink: any Sink) -> Tap {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            state.sinks[state.nextID] = sink
            if state.ticker == nil { state.ticker = startTicker() }
            return state.nextID
        }
        return Tap { [weak self] in self?.removeSink(id) }
    }

    /// Follows the whole log for a service that acts on changes: signals
    /// `wakeup` for each committed event `wanted` takes, and when this
    /// follower lagged (it may have missed one). Subscribed before it
    /// returns, so call it before the service's first read of the store;
    /// cancel the task to stop following.
    public func wake(_ wakeup: Wakeup, when wanted: @escaping @Sendable (JobEvent) -> Bool) -> Task<Void, Never> {
        let subscription = subscribeAll()
        return Task {
            await withTaskCancellationHandler {
                for await item in subscription {
                    switch item {
                    case .event(let event) where wanted(event): wakeup.signal()
                    case .lagged: wakeup.signal()
                    case .event, .logs, .heartbeat: continue
                    }
                }
            } onCancel: {
                subscription.cancel()
            }
        }
    }

    /// How many subscriptions are open (all jobs).
    public var subscriberCount: Int { state.withLock { $0.count } }

    public func publish(_ event: JobEvent) { publish([event]) }

    /// Publishes the events of one commit, in order: one look-up of the
    /// subscribers for the whole batch, and each subscriber gets the batch
    /// back to back (a waiting reader wakes once for it, not once per event).
    public func publish(_ events: [JobEvent]) {
        guard !events.isEmpty else { return }
        let (everyone, sinks, perJob) = state.withLock { state -> ([Subscriber], [any Sink], [String: [Subscriber]]) in
            var perJob: [String: [Subscriber]] = [:]
            for event in events where event.entity == .job && perJob[event.jobID] == nil {
                if let subscribers = state.subscribers[event.jobID] { perJob[event.jobID] = Array(subscribers.values) }
            }
            return (Array(state.everything.values), Array(state.sinks.values), perJob)
        }
        for sink in sinks { sink.deliver(events) }
        for subscriber in everyone {
            for event in events { subscriber.send(.event(event)) }
        }
        for event in events where event.entity == .job {
            for subscriber in perJob[event.jobID] ?? [] { subscriber.send(.event(event)) }
        }
    }

    public func publish(logs: [LogLine], of jobID: String) {
        guard !logs.isEmpty else { return }
        deliver(.logs(logs), to: jobID)
    }

    private func deliver(_ item: Item, to jobID: String) {
        let targets = state.withLock { $0.subscribers[jobID].map { Array($0.values) } ?? [] }
        for subscriber in targets { subscriber.send(item) }
    }

    /// Removes a job's subscriber, or (nil) a subscriber to the whole log.
    private func remove(_ jobID: String?, _ id: UInt64) {
        let ticker = state.withLock { state -> Task<Void, Never>? in
            if let jobID {
                state.subscribers[jobID]?[id] = nil
                if state.subscribers[jobID]?.isEmpty == true { state.subscribers[jobID] = nil }
            } else {
                state.everything[id] = nil
            }
            return state.stopTicker()
        }
        ticker?.cancel()
    }

    private func removeSink(_ id: UInt64) {
        let ticker = state.withLock { state -> Task<Void, Never>? in
            state.sinks[id] = nil
            return state.stopTicker()
        }
        ticker?.cancel()
    }

    /// One timer for every subscriber; it ends with the last subscription.
    private func startTicker() -> Task<Void, Never> {
        let period = heartbeat
        return Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: period)
                guard !Task.isCancelled, let self else { return }
                let (all, sinks) = self.state.withLock { ($0.subscribers.values.flatMap(\.values) + $0.everything.values, Array($0.sinks.values)) }
                for subscriber in all { subscriber.send(.heartbeat) }
                for sink in sinks { sink.heartbeat() }
            }
        }
    }

    final class Subscriber: Sendable {
        let continuation: AsyncStream<Item>.Continuation
        let lagged = Mutex(false)
        /// Items sent and not yet taken: counted before they are buffered,
        /// so a reader told "more" never waits long for it.
        let buffered = Atomic<Int>(0)

        init(continuation: AsyncStream<Item>.Continuation) { self.continuation = continuation }

        func send(_ item: Item) {
            buffered.add(1, ordering: .relaxed)
            switch continuation.yield(item) {
            case .enqueued: break
            case .dropped:
                buffered.subtract(1, ordering: .relaxed)
                lagged.withLock { $0 = true }
            case .terminated: buffered.subtract(1, ordering: .relaxed)
            @unknown default: buffered.subtract(1, ordering: .relaxed)
            }
        }

        func takeLagged() -> Bool {
            lagged.withLock { flag in
                defer { flag = false }
                return flag
            }
        }
    }

    /// One subscriber's items; ends when the subscription is cancelled (or
    /// the task iterating it is).
    public struct Subscription: AsyncSequence, Sendable {
        let stream: AsyncStream<Item>
        let subscriber: Subscriber

        public func cancel() { subscriber.continuation.finish() }

        public func makeAsyncIterator() -> Iterator { Iterator(base: stream.makeAsyncIterator(), subscriber: subscriber) }

        public struct Iterator: AsyncIteratorProtocol {
            var base: AsyncStream<Item>.Iterator
            let subscriber: Subscriber
            var held: Item?

            /// Whether `next()` has an item at hand (a stream writes those
            /// together, in one write).
            public var hasBuffered: Bool { held != nil || subscriber.buffered.load(ordering: .relaxed) > 0 }

            public mutating func next() async -> Item? {
                if let item = held {
                    held = nil
                    return item
                }
                guard let item = await base.next() else { return nil }
                subscriber.buffered.subtract(1, ordering: .relaxed)
                if subscriber.takeLagged() {
                    held = item
                    return .lagged
                }
                return item
            }
        }
    }
}
