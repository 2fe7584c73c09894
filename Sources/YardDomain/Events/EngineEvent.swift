/// One JSON line the Python engine writes on its event descriptor
/// (DESIGN.md, "Engine protocol"). The payload is kept whole so the server
/// can stream it unchanged; typed accessors read what the worker acts on.
public struct EngineEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// versions, device, save_dir, epochs, start_epoch, resumed
        case started
        /// within an epoch: epoch, epochs, batch, batches, losses (throttled)
        case progress
        /// an epoch ended: epoch, epochs, metrics, losses, lr, seconds
        case epoch
        /// a human-readable line
        case log
        /// a file worth keeping: path, kind
        case artifact
        /// after training, the best weights on the test split: split, metrics
        /// (precision, recall, f1, mAP50, mAP50-95), classes (the same per
        /// class, with images and instances), confusion_matrix {names, matrix}
        case evaluation
        /// best, last, metrics, fitness
        case finished
        /// a stop was honoured: last (resumable checkpoint), epoch
        case stopped
        /// error (type), message
        case failed
    }

    public let kind: Kind
    public let payload: [String: JSONValue]

    public init(kind: Kind, payload: [String: JSONValue]) {
        self.kind = kind
        self.payload = payload
    }

    /// Decodes one line; nil for blank lines. Unknown event names are an error
    /// so a protocol mismatch between Swift and Python is loud.
    public static func decode(line: String) throws(YardError) -> EngineEvent? {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return nil }
        guard let data = trimmed.data(using: .utf8),
              let value = try? JSONDecoder().decode(JSONValue.self, from: data),
              case .object(var object) = value
        else {
            throw YardError(.unavailable, field: "engine", "engine wrote a line that is not a JSON object: \(trimmed.prefix(120))")
        }
        guard let name = object.removeValue(forKey: "event")?.stringValue, let kind = Kind(rawValue: name) else {
            throw YardError(.unavailable, field: "engine", "engine event has an unknown or missing \"event\": \(trimmed.prefix(120))")
        }
        return EngineEvent(kind: kind, payload: object)
    }

    public var epoch: Int? { payload["epoch"]?.intValue }
    public var epochs: Int? { payload["epochs"]?.intValue }
    public var seconds: Double? { payload["seconds"]?.doubleValue }
    public var path: String? { payload["path"]?.stringValue }
    public var message: String? { payload["message"]?.stringValue }
    public var line: String? { payload["line"]?.stringValue }

    /// A flat name → number map of `metrics`, `losses` and `lr` together,
    /// and Ultralytics' `fitness` of the epoch (what sweeps maximise by default).
    public var numbers: [String: Double] {
        var out: [String: Double] = [:]
        for section in ["metrics", "losses", "lr"] {
            for (key, value) in payload[section]?.objectValue ?? [:] {
                if let d = value.doubleValue { out[key] = d }
            }
        }
        if let fitness = payload["fitness"]?.doubleValue, fitness.isFinite { out["fitness"] = fitness }
        return out
    }

    public var json: JSONValue {
        var object = payload
        object["event"] = .string(kind.rawValue)
        return .object(object)
    }
}

import Foundation
