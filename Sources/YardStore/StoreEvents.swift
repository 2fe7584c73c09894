import Foundation
import YardDomain

/// The bodies of the events the store writes with the change they record
/// (in the same transaction), for sweeps, model versions, aliases and
/// dataset versions. Small: what changed and the ids to read the rest by;
/// no config, no secret.
enum StoreEvents {
    static func sweepState(_ sweep: Sweep, previous: Sweep.State?) -> JSONValue {
        var body: [String: JSONValue] = ["state": .string(sweep.state.rawValue), "study": .string(sweep.study),
                                         "experiment": .string(sweep.experiment), "trials": .int(sweep.trials.count)]
        if let previous { body["previous"] = .string(previous.rawValue) }
        if let message = sweep.message { body["message"] = .string(LogLine.bounded(message, limit: 2000)) }
        if let best = sweep.best { body["best"] = .object(["number": .int(best.number), "job_id": .string(best.jobID), "value": .double(best.value)]) }
        return .object(body)
    }

    /// `trial` events of a sweep's change: a trial asked (with its values)
    /// and a trial told how it ended (with its value); a sweep's pages and
    /// its service follow these. The epochs reported to the pruner are not events.
    static func trialChanges(from before: Sweep, to after: Sweep) -> [JSONValue] {
        let old = Dictionary(before.trials.map { ($0.number, $0) }, uniquingKeysWith: { first, _ in first })
        var bodies: [JSONValue] = []
        for trial in after.trials {
            var body: [String: JSONValue] = ["number": .int(trial.number), "job_id": .string(trial.jobID)]
            if let was = old[trial.number] {
                guard was.told == nil, let told = trial.told else { continue }
                body["state"] = .string(told.rawValue)
                if let value = trial.value { body["value"] = .double(value) }
                if let message = trial.message { body["message"] = .string(LogLine.bounded(message, limit: 2000)) }
            } else {
                body["state"] = .string(trial.told?.rawValue ?? "asked")
                body["params"] = .object(trial.params)
            }
            bodies.append(.object(body))
        }
        return bodies
    }

    static func modelVersion(_ version: ModelVersion) -> JSONValue {
        var body: [String: JSONValue] = ["version": .string(version.version), "job_id": .string(version.jobID)]
        if let sha = version.sha256 { body["sha256"] = .string(sha) }
        return .object(body)
    }

    static func aliasMoved(_ change: AliasChange) -> JSONValue {
        var body: [String: JSONValue] = ["alias": .string(change.alias), "version": change.version.map(JSONValue.string) ?? .null,
                                         "previous": change.previous.map(JSONValue.string) ?? .null, "reason": .string(change.reason)]
        if let by = change.by { body["by"] = .string(by) }
        return .object(body)
    }

    static func datasetVersion(_ version: DatasetVersion) -> JSONValue {
        .object(["number": .int(version.number), "id": .string(version.id), "files": .int(version.files),
                 "errors": .int(version.errors), "warnings": .int(version.warnings)])
    }
}
