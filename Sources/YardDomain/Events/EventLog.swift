import Foundation

/// What an event of the log is about. `user`: a user or token added,
/// changed or revoked (the id is the user's name); `audit`: a request that
/// asked for a change, who asked and how it ended (the id is who asked).
public enum EventEntity: String, Sendable, Codable, Hashable, CaseIterable {
    case job, sweep, model, dataset, worker, user, audit

    /// `?entity=`: one of the kinds, or a one-line error naming them.
    public static func parse(_ text: String, field: String = "entity") throws(YardError) -> EventEntity {
        guard let entity = EventEntity(rawValue: text) else {
            throw YardError.invalid(field, "\"\(text.prefix(40))\" is not an entity; use \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return entity
    }
}

/// Which events a reader of the log wants (every condition given must hold).
public struct EventFilter: Sendable, Hashable {
    public var entity: EventEntity?
    /// The entity's id (a job or sweep id, a model or dataset name).
    public var id: String?
    /// Event types (`state`, `epoch`, `alias`, ...); empty: all.
    public var types: Set<String>
    /// Only `state` events into this state.
    public var state: String?
    /// Only events of jobs and sweeps of this experiment.
    public var experiment: String?

    public init(entity: EventEntity? = nil, id: String? = nil, types: Set<String> = [], state: String? = nil, experiment: String? = nil) {
        self.entity = entity
        self.id = id
        self.types = types
        self.state = state
        self.experiment = experiment
    }

    public static let all = EventFilter()

    public func matches(_ event: JobEvent) -> Bool {
        if let entity, event.entity != entity { return false }
        if let id, event.jobID != id { return false }
        if !types.isEmpty, !types.contains(event.type) { return false }
        if let state, event.type != "state" || event.payload["state"]?.stringValue != state { return false }
        if let experiment, event.experiment != experiment { return false }
        return true
    }
}

/// How long the log keeps what: a job's epoch, progress, log and artifact
/// events for `days` (default 30), everything else (state changes, model,
/// sweep and dataset events) for ever.
public struct EventRetention: Sendable, Hashable {
    /// Event types of jobs that retention removes once older than `days`.
    public static let prunableTypes: Set<String> = ["epoch", "progress", "log", "artifact"]
    /// nil: keep everything.
    public var days: Int?

    public init(days: Int? = 30) { self.days = days }

    public func cutoff(now: Date) -> Date? { days.map { now.addingTimeInterval(-Double($0) * 86_400) } }
}
