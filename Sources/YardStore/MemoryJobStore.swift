import Foundation
import YardDomain

/// The in-memory driver: for fast tests and throwaway runs.
public actor MemoryJobStore: JobStore {
    private var jobsByID: [String: Job] = [:]
    private var secretsByID: [String: [String: JSONValue]] = [:]
    private var epochsByID: [String: [Int: EpochRecord]] = [:]
    private var artifactsByID: [String: [String: ArtifactRecord]] = [:]
    private var eventLog: [JobEvent] = []
    private var logLines: [(jobID: String, line: LogLine)] = []
    /// The log's next sequence number, and the next log line's id (apart: the log has no gaps).
    private var nextSeq: Int64 = 1
    private var nextID: Int64 = 1
    private var floor: Int64 = 0
    private var versions: [String: ModelVersion] = [:]
    private var aliasMoves: [AliasChange] = []
    private var settings: [String: ModelSettings] = [:]
    private var aliases: [String: [String: String]] = [:]
    private var sweepsByID: [String: (sweep: Sweep, secrets: [String: JSONValue])] = [:]
    private var datasets: [DatasetVersion] = []
    /// Users by name, and their tokens' records by id (MemoryJobStore+Users.swift).
    var usersByName: [String: User] = [:]
    var tokensByID: [String: TokenRecord] = [:]
    var sessionsByKey: [String: SessionRecord] = [:]
    private let now: @Sendable () -> Date
    public nonisolated let feed: JobFeed

    public init(feed: JobFeed = JobFeed(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.feed = feed
        self.now = now
    }

    public func insert(_ job: Job, secrets: [String: JSONValue], recording state: JSONValue?) throws {
        if let existing = jobsByID.keys.first(where: { $0.lowercased() == job.id.lowercased() }) {
            throw YardError.duplicateJob(job.id, existing: existing)
        }
        jobsByID[job.id] = job
        secretsByID[job.id] = secrets
        if let state { appendEvent(jobID: job.id, type: "state", payload: state) }
    }

    public func job(_ id: String) -> Job? { jobsByID[id] }

    public func jobs(_ query: JobQuery) -> [Job] {
        let cursor = query.before.flatMap { jobsByID[$0] }
        if query.before != nil, cursor == nil { return [] }
        return Array(jobsByID.values.filter { job in
            query.matches(job) && cursor.map { (job.createdAt, job.id) < ($0.createdAt, $0.id) } != false
        }.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }.prefix(query.limit))
    }

    public func jobCounts() -> [JobState: Int] {
        jobsByID.values.reduce(into: [:]) { $0[$1.state, default: 0] += 1 }
    }

    public func jobGauges() -> JobGauges {
        var gauges = JobGauges()
        for job in jobsByID.values { gauges.counts[.init(state: job.state, experiment: job.experiment), default: 0] += 1 }
        var lastState: [String: Date] = [:]
        for event in eventLog where event.entity == .job && event.type == "state" && jobsByID[event.jobID]?.state == .queued {
            lastState[event.jobID] = event.time
        }
        gauges.queuedSince = jobsByID.values.filter { $0.state == .queued }.map { lastState[$0.id] ?? $0.createdAt }.sorted()
        return gauges
    }

    public func jobs(in states: Set<JobState>) -> [Job] {
        jobsByID.values.filter { states.contains($0.state) }.sorted { $0.createdAt < $1.createdAt }
    }

    public func update(_ id: String, _ change: @escaping @Sendable (inout Job) throws -> Void) throws -> Job {
        guard var job = jobsByID[id] else { throw YardError(.notFound, field: "id", "no job \(id)") }
        try change(&job)
        jobsByID[id] = job
        return job
    }

    public func update(_ id: String, recording type: String,
                       _ change: @escaping @Sendable (inout Job) throws -> JSONValue) throws -> (Job, JobEvent) {
        guard var job = jobsByID[id] else { throw YardError(.notFound, field: "id", "no job \(id)") }
        let payload = try change(&job)
        jobsByID[id] = job
        return (job, appendEvent(jobID: id, type: type, payload: payload))
    }

    public func apply(_ writes: [JobWrite]) -> [JobWrite.Result] {
        writes.map { write in
            guard var job = jobsByID[write.id] else { return .missing }
            let records: [JobRecord]
            do {
                guard let returned = try write.change(&job) else { return .skipped }
                records = returned
            } catch {
                return .failed(error)
            }
            jobsByID[write.id] = job
            for record in records {
                switch record {
                case .event(let type, let payload): _ = appendEvent(jobID: write.id, type: type, payload: payload)
                case .logs(let lines): appendLog(jobID: write.id, lines: lines)
                case .epoch(let epoch): recordEpoch(epoch)
                case .artifact(let artifact): recordArtifact(artifact)
                }
            }
            return .applied(job)
        }
    }

    public func secrets(of id: String) -> [String: JSONValue] { secretsByID[id] ?? [:] }

    public func recordEpoch(_ epoch: EpochRecord) { epochsByID[epoch.jobID, default: [:]][epoch.epoch] = epoch }

    public func epochs(of id: String) -> [EpochRecord] {
        (epochsByID[id] ?? [:]).values.sorted { $0.epoch < $1.epoch }
    }

    public func recordArtifact(_ artifact: ArtifactRecord) {
        artifactsByID[artifact.jobID, default: [:]][artifact.key] = artifact
    }

    public func artifacts(of id: String) -> [ArtifactRecord] {
        (artifactsByID[id] ?? [:]).values.sorted { $0.key < $1.key }
    }

    public func appendEvent(jobID: String, type: String, payload: JSONValue) -> JobEvent {
        appendEvent(.job, id: jobID, type: type, payload: payload)
    }

    @discardableResult
    public func appendEvent(_ entity: EventEntity, id: String, type: String, payload: JSONValue) -> JobEvent {
        let experiment = switch entity {
        case .job: jobsByID[id]?.experiment
        case .sweep: sweepsByID[id]?.sweep.experiment
        default: String?.none
        }
        let event = JobEvent(id: nextSeq, jobID: id, type: type, payload: payload, time: now(), entity: entity, experiment: experiment)
        nextSeq += 1
        eventLog.append(event)
        feed.publish(event)
        return event
    }

    public func events(of id: String, after: Int64, limit: Int) -> [JobEvent] {
        Array(eventLog.lazy.filter { $0.entity == .job && $0.jobID == id && $0.id > after }.prefix(limit))
    }

    public func events(after: Int64, limit: Int, filter: EventFilter) -> [JobEvent] {
        // The log is in id order: start after the cursor without scanning what is before it.
        var low = 0, high = eventLog.count
        while low < high {
            let middle = (low + high) / 2
            if eventLog[middle].id > after { high = middle } else { low = middle + 1 }
        }
        let start = low
        return Array(eventLog[start...].lazy.filter(filter.matches).prefix(limit))
    }

    @discardableResult
    public func pruneEvents(before: Date) -> Int {
        let prunable = { (e: JobEvent) in e.entity == .job && EventRetention.prunableTypes.contains(e.type) && e.time < before }
        guard let highest = eventLog.last(where: prunable)?.id else { return 0 }
        let count = eventLog.count
        eventLog.removeAll(where: prunable)
        floor = max(floor, highest)
        return count - eventLog.count
    }

    public func eventFloor() -> Int64 { floor }

    public func eventHead() -> Int64 { max(eventLog.last?.id ?? 0, floor) }

    @discardableResult
    public func appendLog(jobID: String, lines: [String]) -> [LogLine] {
        let stored = lines.map { line in
            defer { nextID += 1 }
            return LogLine(id: nextID, line: LogLine.bounded(line))
        }
        logLines.append(contentsOf: stored.map { (jobID, $0) })
        feed.publish(logs: stored, of: jobID)
        return stored
    }

    public func logs(of id: String, last count: Int) -> [LogLine] {
        Array(logLines.lazy.filter { $0.jobID == id }.map(\.line).suffix(count))
    }

    public func logs(of id: String, after: Int64, limit: Int) -> [LogLine] {
        Array(logLines.lazy.filter { $0.jobID == id && $0.line.id > after }.map(\.line).prefix(limit))
    }

    public func createModelVersion(_ draft: ModelVersion) -> (version: ModelVersion, created: Bool) {
        let mine = versions.values.filter { $0.name == draft.name }
        if let existing = mine.filter({ $0.jobID == draft.jobID }).min(by: { (Int($0.version) ?? 0) < (Int($1.version) ?? 0) }) {
            return (existing, false)
        }
        var version = draft
        version.version = String((mine.compactMap { Int($0.version) }.max() ?? 0) + 1)
        version.aliases = []
        versions["\(version.name)\u{1F}\(version.version)"] = version
        appendEvent(.model, id: version.name, type: "version", payload: StoreEvents.modelVersion(version))
        return (version, true)
    }

    public func updateModelVersion(name: String, version: String, _ change: @Sendable (inout ModelVersion) -> Void) throws -> ModelVersion {
        let key = "\(name)\u{1F}\(version)"
        guard var record = versions[key] else {
            throw YardError(.notFound, field: "version", "no version \(version) of model \(name); `yard models list` shows them")
        }
        change(&record)
        record.name = name
        record.version = version
        versions[key] = record
        return record
    }

    public func setModelAlias(name: String, alias: String, version: String?, reason: String, by: String?, time: Date) throws -> AliasChange {
        if let version, versions["\(name)\u{1F}\(version)"] == nil {
            throw YardError(.notFound, field: "version", "no version \(version) of model \(name); `yard models list` shows them")
        }
        var change = AliasChange(name: name, alias: alias, version: version, previous: aliases[name]?[alias], time: time, reason: reason)
        change.by = by
        aliases[name, default: [:]][alias] = version
        aliasMoves.append(change)
        appendEvent(.model, id: name, type: "alias", payload: StoreEvents.aliasMoved(change))
        return change
    }

    public func aliasHistory(name: String, alias: String?, limit: Int) -> [AliasChange] {
        Array(aliasMoves.reversed().filter { $0.name == name && (alias == nil || $0.alias == alias) }.prefix(limit))
    }

    public func modelSettings(name: String) -> ModelSettings? { settings[name] }
    public func setModelSettings(name: String, _ settings: ModelSettings) { self.settings[name] = settings }

    public func modelVersions(name: String?) -> [ModelVersion] {
        versions.values.filter { name == nil || $0.name == name }.map { v in
            var v = v
            v.aliases = (aliases[v.name] ?? [:]).filter { $0.value == v.version }.map(\.key).sorted()
            return v
        }.sorted { $0.name != $1.name ? $0.name < $1.name : (Int($0.version) ?? 0) > (Int($1.version) ?? 0) }
    }

    public func insertSweep(_ sweep: Sweep, secrets: [String: JSONValue]) throws {
        if let existing = sweepsByID.keys.first(where: { $0.lowercased() == sweep.id.lowercased() }) {
            throw YardError(.conflict, field: "id", "a sweep \(existing) exists already; pick another study_name or id")
        }
        sweepsByID[sweep.id] = (sweep, secrets)
        appendEvent(.sweep, id: sweep.id, type: "state", payload: StoreEvents.sweepState(sweep, previous: nil))
    }

    public func sweep(_ id: String) -> Sweep? { sweepsByID[id]?.sweep }

    public func sweeps(limit: Int, active: Bool) -> [Sweep] {
        Array(sweepsByID.values.map(\.sweep).filter { !active || !$0.state.isTerminal }
            .sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }.prefix(limit))
    }

    public func updateSweep(_ id: String, _ change: @escaping @Sendable (inout Sweep) throws -> Void) throws -> Sweep {
        guard var entry = sweepsByID[id] else { throw YardError(.notFound, field: "id", "no sweep \(id)") }
        let before = entry.sweep, previous = entry.sweep.state
        try change(&entry.sweep)
        sweepsByID[id] = entry
        for body in StoreEvents.trialChanges(from: before, to: entry.sweep) {
            appendEvent(.sweep, id: id, type: "trial", payload: body)
        }
        if entry.sweep.state != previous {
            appendEvent(.sweep, id: id, type: "state", payload: StoreEvents.sweepState(entry.sweep, previous: previous))
        }
        return entry.sweep
    }

    public func sweepSecrets(of id: String) -> [String: JSONValue] { sweepsByID[id]?.secrets ?? [:] }

    public func recordDatasetVersion(_ version: DatasetVersion) -> (DatasetVersion, created: Bool) {
        if let existing = datasets.first(where: { $0.name == version.name && $0.id == version.id }) { return (existing, false) }
        var numbered = version
        numbered.number = (datasets.filter { $0.name == version.name }.map(\.number).max() ?? 0) + 1
        datasets.append(numbered)
        appendEvent(.dataset, id: numbered.name, type: "version", payload: StoreEvents.datasetVersion(numbered))
        return (numbered, true)
    }

    public func datasetVersions(name: String?) -> [DatasetVersion] {
        datasets.filter { name == nil || $0.name == name }.sorted {
            $0.createdAt != $1.createdAt ? $0.createdAt > $1.createdAt : $0.name != $1.name ? $0.name < $1.name : $0.number > $1.number
        }
    }

    public func jobs(usingDataset reference: String, limit: Int) -> [Job] {
        Array(jobsByID.values.filter { $0.dataset == reference }.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }.prefix(limit))
    }
}
