/// The events a webhook can be sent for, as receivers see them
/// (`job.failed`, `sweep.finished`, ...). Each is read off one kind of
/// entry in the event log: a job's or sweep's `state` event into an end
/// state, a model's `alias` event, a dataset's `version` event, a worker's
/// `state` event into `lost`.
public enum WebhookEventName: String, Sendable, Codable, CaseIterable, Hashable {
    case jobSucceeded = "job.succeeded"
    case jobFailed = "job.failed"
    case jobStopped = "job.stopped"
    case jobPruned = "job.pruned"
    /// A sweep ended: its state event into finished, stopped or failed (the payload's `state` says which).
    case sweepFinished = "sweep.finished"
    case modelAliasMoved = "model.alias_moved"
    case datasetVersionAdded = "dataset.version_added"
    case workerLost = "worker.lost"

    public static var jobEnds: Set<WebhookEventName> { [.jobSucceeded, .jobFailed, .jobStopped, .jobPruned] }

    /// The webhook event an entry of the log is, or nil when it is none.
    public static func of(_ event: JobEvent) -> WebhookEventName? {
        let state = event.payload["state"]?.stringValue
        switch (event.entity, event.type) {
        case (.job, "state"):
            return state.flatMap { WebhookEventName(rawValue: "job.\($0)") }.flatMap { jobEnds.contains($0) ? $0 : nil }
        case (.sweep, "state"):
            return ["finished", "stopped", "failed"].contains(state ?? "") ? .sweepFinished : nil
        case (.model, "alias"): return .modelAliasMoved
        case (.dataset, "version"): return .datasetVersionAdded
        case (.worker, "state"): return state == "lost" ? .workerLost : nil
        default: return nil
        }
    }

    /// A comma-separated list (`job.failed,sweep.finished`), or a one-line error naming `field`.
    public static func parseList(_ items: [String], field: String) throws(YardError) -> Set<WebhookEventName> {
        var names: Set<WebhookEventName> = []
        for item in items.map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let name = WebhookEventName(rawValue: item) else {
                throw YardError.invalid(field, "\"\(item.prefix(40))\" is not a webhook event; use \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            names.insert(name)
        }
        guard !names.isEmpty else { throw YardError.invalid(field, "lists no event; use \(allCases.map(\.rawValue).joined(separator: ", "))") }
        return names
    }
}

/// How a webhook's body is shaped: Trainyard's JSON, or the same with a
/// Slack/Mattermost `text` line (chosen by itself for hooks.slack.com).
public enum WebhookFormat: String, Sendable, Codable, CaseIterable, Hashable {
    case json, slack
}
