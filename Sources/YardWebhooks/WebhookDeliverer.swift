import Foundation
import Logging
import ServiceLifecycle
import YardDomain
import YardStore

/// Sends webhooks for what the event log records (job ends, sweep ends,
/// alias moves, dataset versions, lost workers) to the server-wide targets
/// and to the `notify:` of the job or sweep concerned. It follows the log:
/// it reads the store from its cursor when it starts and whenever the feed
/// says something was appended, and otherwise sleeps (a timer only for its
/// own retries). Deliveries run in tasks of their own, so a slow receiver
/// delays neither the code that changes jobs nor other targets. At least
/// once: an event's deliveries are written to the state file with the
/// cursor that passed it, before they are tried, and removed once a
/// receiver answered 2xx or they were given up (after `backoff.giveUpAfter`).
public actor WebhookDeliverer: Service {
    let store: any JobStore
    let settings: WebhookSettings
    let file: WebhookStateFile
    let logger: Logger
    let now: @Sendable () -> Date
    let random: @Sendable () -> Double
    private var state: WebhookState
    private var loaded = false
    private var inFlight: Set<String> = []
    /// Targets of `notify:` sections met since the start (`job:ID`, `sweep:ID`).
    private var configTargets: [String: WebhookTarget] = [:]
    private var saving = false
    private var dirty = false
    private var readError: String?
    private let wakeup = Wakeup()

    /// The log entries that can be webhook events.
    static let types: Set<String> = ["state", "alias", "version"]
    /// Config targets kept in the status once nothing waits for them.
    static let keptConfigTargets = 100

    public init(store: any JobStore, settings: WebhookSettings, stateFile: String, logger: Logger,
                now: @escaping @Sendable () -> Date = { Date() }, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.store = store
        self.settings = settings
        self.file = WebhookStateFile(path: stateFile)
        self.logger = logger
        self.now = now
        self.random = random
        self.state = WebhookState(since: now())
    }

    public func run() async throws {
        try await load()
        let client = WebhookSender.makeClient(timeout: settings.timeout)
        let sender = WebhookSender(client: client, timeout: settings.timeout, allowPrivate: settings.allowPrivate)
        // Subscribed before the first read: an event appended in between is seen by one or the other.
        let follower = store.feed.wake(wakeup) { Self.types.contains($0.type) }
        await cancelWhenGracefulShutdown {
            await self.loop(sender)
        }
        follower.cancel()
        await flush()
        try? await client.shutdown()
    }

    private func loop(_ sender: WebhookSender) async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                await readLog()
                for delivery in takeDue() {
                    group.addTask {
                        guard let target = await self.target(delivery.target) else {
                            await self.finished(delivery.id, .init(status: nil, error: "its target is gone (a --webhook no longer given, or a job's notify: unreadable)"), drop: true)
                            return
                        }
                        let outcome = await sender.send(delivery.body, sequence: delivery.sequence, to: target, now: self.now())
                        if Task.isCancelled, !outcome.delivered { return await self.release(delivery.id) }
                        await self.finished(delivery.id, outcome)
                    }
                }
                await wakeup.wait(timeout: nextWake())
            }
            group.cancelAll()
        }
    }

    // MARK: state

    private func load() async throws {
        let start = now()
        let file = self.file
        var loaded: WebhookState
        do {
            loaded = try await offloadThrowing { try file.load(now: start) }
        } catch {
            // A state file that cannot be read is kept aside, not lost; the webhooks start afresh.
            let aside = file.path + ".unreadable-\(Int(start.timeIntervalSince1970))"
            _ = rename(file.path, aside)
            logger.error("webhooks: \(error); kept it as \(aside) and started afresh")
            loaded = WebhookState(since: start)
        }
        let configured = Set(settings.targets.map(\.key))
        let dropped = loaded.pending.filter { $0.target.hasPrefix("server-") && !configured.contains($0.target) }
        if !dropped.isEmpty { logger.notice("webhooks: \(dropped.count) deliveries dropped: their --webhook is no longer given") }
        loaded.pending.removeAll { $0.target.hasPrefix("server-") && !configured.contains($0.target) }
        loaded.targets = loaded.targets.filter { !$0.key.hasPrefix("server-") || configured.contains($0.key) }
        for target in settings.targets where loaded.targets[target.key] == nil {
            loaded.targets[target.key] = record(target, cursor: loaded.cursor)
        }
        state = loaded
        self.loaded = true
        // Saved before anything is read, so a fresh state's start survives a crash.
        let snapshot = loaded
        try await offloadThrowing { try file.save(snapshot) }
        let pending = loaded.pending.count
        logger.info("webhooks: \(settings.targets.count) server-wide target(s), \(pending) deliveries pending, from event \(loaded.cursor)")
    }

    private func record(_ target: WebhookTarget, cursor: Int64) -> WebhookState.TargetRecord {
        WebhookState.TargetRecord(url: target.url.masked, events: target.events.map { $0.map(\.rawValue).sorted() }, format: target.format.rawValue,
                                  cursor: cursor, touched: now())
    }

    /// Writes the state whole, one write at a time; changes made meanwhile go in the next.
    private func persist() async {
        dirty = true
        guard !saving else { return }
        saving = true
        defer { saving = false }
        while dirty {
            dirty = false
            let snapshot = state
            let file = self.file
            do { try await offloadThrowing { try file.save(snapshot) } } catch {
                logger.error("webhooks: cannot save the state (\(error)); deliveries stay in memory until it can")
            }
        }
    }

    private func flush() async {
        while saving { await Task.yield() }
        if dirty || loaded { try? file.save(state) }
    }

    // MARK: reading the log

    private func readLog() async {
        do {
            let floor = try await store.eventFloor()
            if state.cursor < floor {
                let cursor = state.cursor
                state.note = "retention removed events up to \(floor), past the cursor (\(cursor)); went on from \(floor) (job ends and other webhook events are never removed)"
                logger.notice("webhooks: \(state.note ?? "")")
                state.cursor = floor
            }
            while true {
                let batch = try await store.events(after: state.cursor, limit: 200, filter: EventFilter(types: Self.types))
                for event in batch {
                    try await handle(event)
                    state.cursor = event.id
                }
                if !batch.isEmpty {
                    let cursor = state.cursor
                    for key in Array(state.targets.keys) { state.targets[key]?.cursor = cursor }
                    await persist()
                }
                if batch.count < 200 { break }
            }
            readError = nil
        } catch {
            readError = "cannot read the event log: \(Redaction.redactText("\(error)"))"
            logger.warning("webhooks: \(readError ?? "")")
        }
    }

    private func handle(_ event: JobEvent) async throws {
        guard let name = WebhookEventName.of(event), event.time >= state.since else { return }
        var targets = settings.targets.filter { $0.takes(name) }
        if let owner = try await ownerTarget(event, name), owner.takes(name) { targets.append(owner) }
        let time = now()
        for target in targets {
            state.pending.append(.init(target: target.key, sequence: event.id, event: name.rawValue,
                                       body: WebhookPayload.body(event, name: name, format: target.format), first: time, next: time))
            if state.targets[target.key] == nil {
                let made = record(target, cursor: state.cursor)
                state.targets[target.key] = made
            }
            state.targets[target.key]?.touched = time
        }
        trimConfigTargets()
    }

    /// The `notify:` the event goes to: a job's own, or for a sweep's trial
    /// (and the sweep itself) the sweep's.
    private func ownerTarget(_ event: JobEvent, _ name: WebhookEventName) async throws -> WebhookTarget? {
        switch event.entity {
        case .job:
            guard let job = try await store.job(event.jobID), job.config["notify"] != nil || job.config["metadata"]?["sweep_id"] != nil else { return nil }
            if let sweep = job.config["metadata"]?["sweep_id"]?.stringValue { return try await sweepTarget(sweep) }
            guard let spec = NotifyLookup.spec(job.config, secrets: try await store.secrets(of: job.id)) else { return nil }
            return remember(.config(spec, owner: "job:\(job.id)", defaultEvents: WebhookEventName.jobEnds))
        case .sweep:
            return try await sweepTarget(event.jobID)
        default:
            return nil
        }
    }

    private func sweepTarget(_ id: String) async throws -> WebhookTarget? {
        guard let sweep = try await store.sweep(id), sweep.config["notify"] != nil,
              let spec = NotifyLookup.spec(sweep.config, secrets: try await store.sweepSecrets(of: id)) else { return nil }
        return remember(.config(spec, owner: "sweep:\(id)", defaultEvents: [.sweepFinished]))
    }

    private func remember(_ target: WebhookTarget) -> WebhookTarget {
        configTargets[target.key] = target
        return target
    }

    /// A pending delivery's target: a server-wide one, or a `notify:` read again from the store (after a restart).
    private func target(_ key: String) async -> WebhookTarget? {
        if let target = settings.targets.first(where: { $0.key == key }) ?? configTargets[key] { return target }
        if key.hasPrefix("job:") {
            let id = String(key.dropFirst(4))
            guard let job = try? await store.job(id), let secrets = try? await store.secrets(of: id),
                  let spec = NotifyLookup.spec(job.config, secrets: secrets) else { return nil }
            return remember(.config(spec, owner: key, defaultEvents: WebhookEventName.jobEnds))
        }
        if key.hasPrefix("sweep:") { return try? await sweepTarget(String(key.dropFirst(6))) }
        return nil
    }

    /// Config targets nothing waits for are forgotten once there are many.
    private func trimConfigTargets() {
        let waiting = Set(state.pending.map(\.target))
        let idle = state.targets.filter { !$0.key.hasPrefix("server-") && !waiting.contains($0.key) }
        guard idle.count > Self.keptConfigTargets else { return }
        for (key, _) in idle.sorted(by: { $0.value.touched < $1.value.touched }).prefix(idle.count - Self.keptConfigTargets) {
            state.targets[key] = nil
            configTargets[key] = nil
        }
    }

    // MARK: deliveries

    private func takeDue() -> [WebhookState.PendingDelivery] {
        let time = now()
        let room = settings.maxInFlight - inFlight.count
        guard room > 0 else { return [] }
        let due = state.pending.filter { $0.next <= time && !inFlight.contains($0.id) }.sorted { $0.next < $1.next }.prefix(room)
        for delivery in due { inFlight.insert(delivery.id) }
        return Array(due)
    }

    private func nextWake() -> Duration? {
        var waits = state.pending.filter { !inFlight.contains($0.id) }.map { $0.next.timeIntervalSince(now()) }
        if readError != nil { waits.append(5) }
        guard let soonest = waits.min() else { return nil }
        return .milliseconds(max(10, Int(soonest * 1000)))
    }

    private func release(_ id: String) {
        inFlight.remove(id)
    }

    private func finished(_ id: String, _ outcome: WebhookSender.Outcome, drop: Bool = false) async {
        inFlight.remove(id)
        defer { wakeup.signal() }
        guard let index = state.pending.firstIndex(where: { $0.id == id }) else { return }
        var delivery = state.pending[index]
        delivery.attempts += 1
        let time = now()
        var record = state.targets[delivery.target] ?? WebhookState.TargetRecord(url: "?", events: nil, format: "json", touched: time)
        record.touched = time
        if let status = outcome.status { record.lastStatus = status }
        if outcome.delivered {
            state.pending.remove(at: index)
            record.lastSequence = delivery.sequence
            record.lastTime = time
            record.delivered += 1
        } else {
            let error = outcome.error ?? "failed"
            record.lastError = error
            record.lastErrorTime = time
            if drop || settings.backoff.givesUp(first: delivery.first, now: time) {
                state.pending.remove(at: index)
                record.givenUp += 1
                record.lastError = "gave up on event \(delivery.sequence) (\(delivery.event)) after \(delivery.attempts) tries: \(error)"
                logger.error("webhooks: \(delivery.target) \(record.url): \(record.lastError ?? "")")
            } else {
                let wait = settings.backoff.delay(afterFailure: delivery.attempts, random: random())
                delivery.next = time.addingTimeInterval(wait)
                delivery.lastError = error
                state.pending[index] = delivery
                let level: Logger.Level = delivery.attempts == 1 ? .warning : .debug
                logger.log(level: level, "webhooks: \(delivery.target) \(record.url): event \(delivery.sequence) not delivered (try \(delivery.attempts)): \(error); next try in \(Int(wait.rounded(.up))) s")
            }
        }
        state.targets[delivery.target] = record
        await persist()
    }

    // MARK: status

    public func status() -> WebhookStatus {
        let formatter = ISO8601DateFormatter()
        let waiting = Dictionary(grouping: state.pending, by: \.target).mapValues(\.count)
        let targets = state.targets.sorted { ($0.key.hasPrefix("server-") ? 0 : 1, $0.key) < ($1.key.hasPrefix("server-") ? 0 : 1, $1.key) }
            .map { key, record in
                WebhookStatus.Target(key: key, kind: key.hasPrefix("server-") ? "server" : String(key.prefix { $0 != ":" }), url: record.url,
                                     events: record.events, format: record.format, lastSequence: record.lastSequence,
                                     lastTime: record.lastTime.map(formatter.string), lastStatus: record.lastStatus,
                                     lastError: record.lastError, lastErrorTime: record.lastErrorTime.map(formatter.string),
                                     pending: waiting[key] ?? 0, delivered: record.delivered, givenUp: record.givenUp)
            }
        return WebhookStatus(cursor: state.cursor, note: [state.note, readError].compactMap { $0 }.joined(separator: "; ").nilIfEmpty,
                             targets: targets, pending: state.pending.count)
    }
}

/// A stored config's `notify:` with its sealed url and secret put back.
enum NotifyLookup {
    static func spec(_ redacted: JSONValue, secrets: [String: JSONValue]) -> NotifySpec? {
        guard redacted["notify"] != nil else { return nil }
        return Redaction.restore(redacted, secrets: secrets)["notify"].flatMap { try? NotifySpec.parse($0) }
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
