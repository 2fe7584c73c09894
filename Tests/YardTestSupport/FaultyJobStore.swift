import Foundation
import Synchronization
import YardDomain
import YardStore

/// A store that forwards to `base` but throws where `fault` says so: the
/// injected faults of the reliability tests (a full disk, a lost database).
public final class FaultyJobStore: JobStore {
    /// One store call, named as in `JobStore`, with the event type or new state where it has one.
    public struct Call: Sendable, CustomStringConvertible {
        public var name: String
        public var detail: String?
        public var description: String { detail.map { "\(name)(\($0))" } ?? name }
    }

    public struct Injected: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public let base: any JobStore
    private let rule: Mutex<@Sendable (Call) -> Injected?>
    public var feed: JobFeed { base.feed }

    public init(base: any JobStore = MemoryJobStore(), fault: @escaping @Sendable (Call) -> Injected? = { _ in nil }) {
        self.base = base
        self.rule = Mutex(fault)
    }

    /// Replaces the rule (e.g. the disk filled up, or space came back).
    public func inject(_ fault: @escaping @Sendable (Call) -> Injected?) { rule.withLock { $0 = fault } }

    private func check(_ name: String, _ detail: String? = nil) throws {
        let rule = self.rule.withLock { $0 }
        if let error = rule(Call(name: name, detail: detail)) { throw error }
    }

    public func insert(_ job: Job, secrets: [String: JSONValue], recording state: JSONValue?) async throws {
        try check("insert"); try await base.insert(job, secrets: secrets, recording: state)
    }
    public func job(_ id: String) async throws -> Job? { try check("job"); return try await base.job(id) }
    public func jobs(_ query: JobQuery) async throws -> [Job] { try check("jobs"); return try await base.jobs(query) }
    public func jobs(in states: Set<JobState>) async throws -> [Job] { try check("jobs"); return try await base.jobs(in: states) }
    public func update(_ id: String, _ change: @escaping @Sendable (inout Job) throws -> Void) async throws -> Job {
        try check("update"); return try await base.update(id, change)
    }
    public func update(_ id: String, recording type: String,
                       _ change: @escaping @Sendable (inout Job) throws -> JSONValue) async throws -> (Job, JobEvent) {
        // The state a move is going to, known only after the change ran: checked on a copy first.
        var state: String?
        if let job = try await base.job(id) {
            var copy = job
            let payload = try change(&copy)
            state = payload["state"]?.stringValue
        }
        try check("update", state ?? type)
        return try await base.update(id, recording: type, change)
    }
    public func apply(_ writes: [JobWrite]) async throws -> [JobWrite.Result] {
        try check("apply")
        return try await base.apply(writes)
    }
    public func secrets(of id: String) async throws -> [String: JSONValue] { try check("secrets"); return try await base.secrets(of: id) }
    public func recordEpoch(_ epoch: EpochRecord) async throws { try check("recordEpoch"); try await base.recordEpoch(epoch) }
    public func epochs(of id: String) async throws -> [EpochRecord] { try check("epochs"); return try await base.epochs(of: id) }
    public func recordArtifact(_ artifact: ArtifactRecord) async throws { try check("recordArtifact"); try await base.recordArtifact(artifact) }
    public func artifacts(of id: String) async throws -> [ArtifactRecord] { try check("artifacts"); return try await base.artifacts(of: id) }
    public func appendEvent(jobID: String, type: String, payload: JSONValue) async throws -> JobEvent {
        try check("appendEvent", type); return try await base.appendEvent(jobID: jobID, type: type, payload: payload)
    }
    public func events(of id: String, after: Int64, limit: Int) async throws -> [JobEvent] {
        try check("events"); return try await base.events(of: id, after: after, limit: limit)
    }
    public func appendEvent(_ entity: EventEntity, id: String, type: String, payload: JSONValue) async throws -> JobEvent {
        try check("appendEvent", type); return try await base.appendEvent(entity, id: id, type: type, payload: payload)
    }
    public func events(after: Int64, limit: Int, filter: EventFilter) async throws -> [JobEvent] {
        try check("events"); return try await base.events(after: after, limit: limit, filter: filter)
    }
    public func pruneEvents(before: Date) async throws -> Int {
        try check("pruneEvents"); return try await base.pruneEvents(before: before)
    }
    public func eventFloor() async throws -> Int64 {
        try check("eventFloor"); return try await base.eventFloor()
    }
    public func eventHead() async throws -> Int64 {
        try check("eventHead"); return try await base.eventHead()
    }
    public func appendLog(jobID: String, lines: [String]) async throws -> [LogLine] {
        try check("appendLog"); return try await base.appendLog(jobID: jobID, lines: lines)
    }
    public func logs(of id: String, after: Int64, limit: Int) async throws -> [LogLine] {
        try check("logs"); return try await base.logs(of: id, after: after, limit: limit)
    }
    public func logs(of id: String, last count: Int) async throws -> [LogLine] {
        try check("logs"); return try await base.logs(of: id, last: count)
    }
    public func jobCounts() async throws -> [JobState: Int] { try check("jobCounts"); return try await base.jobCounts() }
    public func jobGauges() async throws -> JobGauges { try check("jobGauges"); return try await base.jobGauges() }
    public func createModelVersion(_ draft: ModelVersion) async throws -> (version: ModelVersion, created: Bool) {
        try check("createModelVersion"); return try await base.createModelVersion(draft)
    }
    public func updateModelVersion(name: String, version: String, _ change: @escaping @Sendable (inout ModelVersion) -> Void) async throws -> ModelVersion {
        try check("updateModelVersion"); return try await base.updateModelVersion(name: name, version: version, change)
    }
    public func setModelAlias(name: String, alias: String, version: String?, reason: String, by: String?, time: Date) async throws -> AliasChange {
        try check("setModelAlias"); return try await base.setModelAlias(name: name, alias: alias, version: version, reason: reason, by: by, time: time)
    }
    public func aliasHistory(name: String, alias: String?, limit: Int) async throws -> [AliasChange] {
        try check("aliasHistory"); return try await base.aliasHistory(name: name, alias: alias, limit: limit)
    }
    public func modelVersions(name: String?) async throws -> [ModelVersion] { try check("modelVersions"); return try await base.modelVersions(name: name) }
    public func modelSettings(name: String) async throws -> ModelSettings? { try check("modelSettings"); return try await base.modelSettings(name: name) }
    public func setModelSettings(name: String, _ settings: ModelSettings) async throws { try check("setModelSettings"); try await base.setModelSettings(name: name, settings) }
    public func recordDatasetVersion(_ version: DatasetVersion) async throws -> (DatasetVersion, created: Bool) { try check("recordDatasetVersion"); return try await base.recordDatasetVersion(version) }
    public func datasetVersions(name: String?) async throws -> [DatasetVersion] { try check("datasetVersions"); return try await base.datasetVersions(name: name) }
    public func jobs(usingDataset reference: String, limit: Int) async throws -> [Job] { try check("jobs"); return try await base.jobs(usingDataset: reference, limit: limit) }
    public func insertSweep(_ sweep: Sweep, secrets: [String: JSONValue]) async throws {
        try check("insertSweep"); try await base.insertSweep(sweep, secrets: secrets)
    }
    public func sweep(_ id: String) async throws -> Sweep? { try check("sweep"); return try await base.sweep(id) }
    public func sweeps(limit: Int, active: Bool) async throws -> [Sweep] { try check("sweeps"); return try await base.sweeps(limit: limit, active: active) }
    public func updateSweep(_ id: String, _ change: @escaping @Sendable (inout Sweep) throws -> Void) async throws -> Sweep {
        try check("updateSweep"); return try await base.updateSweep(id, change)
    }
    public func sweepSecrets(of id: String) async throws -> [String: JSONValue] { try check("sweepSecrets"); return try await base.sweepSecrets(of: id) }
    public func addUser(_ user: User) async throws { try check("addUser"); try await base.addUser(user) }
    public func user(_ name: String) async throws -> User? { try check("user"); return try await base.user(name) }
    public func users() async throws -> [User] { try check("users"); return try await base.users() }
    public func setRole(user name: String, _ role: Role) async throws -> User { try check("setRole"); return try await base.setRole(user: name, role) }
    public func removeUser(_ name: String, at time: Date) async throws { try check("removeUser"); try await base.removeUser(name, at: time) }
    public func addToken(_ token: TokenRecord) async throws { try check("addToken"); try await base.addToken(token) }
    public func token(id: String) async throws -> TokenRecord? { try check("token"); return try await base.token(id: id) }
    public func tokens(user: String?) async throws -> [TokenRecord] { try check("tokens"); return try await base.tokens(user: user) }
    public func revokeToken(id: String, at time: Date) async throws -> TokenRecord { try check("revokeToken"); return try await base.revokeToken(id: id, at: time) }
    public func saveSession(_ session: SessionRecord, now: Date) async throws { try check("saveSession"); try await base.saveSession(session, now: now) }
    public func sessions(liveAt now: Date) async throws -> [SessionRecord] { try check("sessions"); return try await base.sessions(liveAt: now) }
    public func deleteSession(key: String) async throws { try check("deleteSession"); try await base.deleteSession(key: key) }
}
