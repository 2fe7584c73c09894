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

    static func modelVersion(_ version: ModelVersion) -> JSONValue {
        var body: [String: JSONValue] = ["version": .string(version.version), "job_id": .string(version.jobID)]
        if let sha = version.sha256 { body["sha256"] = .string(sha) }
        return .object(body)
    }

    static func aliasMoved(_ change: AliasChange) -> JSONValue {
        .object(["alias": .string(change.alias), "version": change.version.map(JSONValue.string) ?? .null,
                 "previous": change.previous.map(JSONValue.string) ?? .null, "reason": .string(change.reason)])
    }

    static func datasetVersion(_ version: DatasetVersion) -> JSONValue {
        .object(["number": .int(version.number), "id": .string(version.id), "files": .int(version.files),
                 "errors": .int(version.errors), "warnings": .int(version.warnings)])
    }
}
