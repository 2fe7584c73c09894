import Foundation
import YardDomain

/// The body of a delivery: Trainyard's JSON (the event's name, sequence,
/// time, entity, id, the log entry's payload and a one-line summary with no
/// link in it), plus `text` for Slack and Mattermost incoming webhooks.
public enum WebhookPayload {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public static func body(_ event: JobEvent, name: WebhookEventName, format: WebhookFormat) -> Data {
        let text = summary(event, name: name)
        var body: [String: JSONValue] = [
            "event": .string(name.rawValue), "sequence": .int(Int(event.id)),
            "time": .string(Self.time(event.time)), "entity": .string(event.entity.rawValue),
            "id": .string(event.jobID), "data": event.payload, "summary": .string(text),
        ]
        if format == .slack { body["text"] = .string(text) }
        return (try? encoder.encode(JSONValue.object(body))) ?? Data()
    }

    /// One line a person reads: what happened to what.
    public static func summary(_ event: JobEvent, name: WebhookEventName) -> String {
        let p = event.payload
        let id = event.jobID
        let text: String
        switch name {
        case .jobSucceeded, .jobFailed, .jobStopped, .jobPruned:
            let state = String(name.rawValue.dropFirst(4))
            text = "Trainyard job \(id) \(state)" + (p["message"]?.stringValue.map { ": \($0)" } ?? "")
        case .sweepFinished:
            var line = "Trainyard sweep \(id) ended \(p["state"]?.stringValue ?? "")"
            if let best = p["best"], let number = best["number"]?.intValue, let value = best["value"]?.doubleValue {
                line += "; best trial \(number) (job \(best["job_id"]?.stringValue ?? "")) at \(value)"
            }
            if let message = p["message"]?.stringValue { line += ": \(message)" }
            text = line
        case .modelAliasMoved:
            let alias = p["alias"]?.stringValue ?? ""
            if let version = p["version"]?.stringValue {
                text = "Trainyard model \(id): \(alias) moved to version \(version)" + (p["previous"]?.stringValue.map { " (was \($0))" } ?? "")
            } else {
                text = "Trainyard model \(id): \(alias) removed"
            }
        case .datasetVersionAdded:
            text = "Trainyard dataset \(id): version \(p["number"]?.intValue.map(String.init) ?? "?") added"
                + " (\(p["files"]?.intValue ?? 0) files, \(p["errors"]?.intValue ?? 0) errors)"
        case .workerLost:
            text = "Trainyard worker \(id) lost" + (p["host"]?.stringValue.map { " on \($0)" } ?? "")
                + (p["job_id"]?.stringValue.map { " while running job \($0)" } ?? "")
        }
        return String(Redaction.redactText(text).prefix(500))
    }

    static func time(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
