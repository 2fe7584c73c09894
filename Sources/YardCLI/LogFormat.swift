import ArgumentParser
import Foundation
import Logging
import Synchronization
import YardDomain

/// `--log-format`: `text` (swift-log's lines, the default) or `json`, one
/// object a line on stderr for a log collector.
public enum LogFormat: String, CaseIterable, ExpressibleByArgument, Sendable {
    case text, json

    private static let bootstrapped = Atomic<Bool>(false)

    /// Points every logger of the process at the format; once per process,
    /// before the first logger is made (`text` leaves swift-log's default).
    public func bootstrap() {
        guard self == .json, Self.bootstrapped.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
    }
}

/// One JSON object a line: `time` (UTC, ISO 8601 with milliseconds),
/// `level`, `job_id` and `worker` when the line concerns them, `request_id`
/// for a request's lines, `label` (the component), `message`, then the
/// other metadata as strings. A job's id is its logger's `job_id` metadata,
/// or the job a message names first (`job ID: ...`, the convention of every
/// line about a job); the worker is its logger's `worker` metadata.
public struct JSONLogHandler: LogHandler {
    let label: String
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let write: @Sendable (String) -> Void

    /// `write` takes each line (stderr by default; tests collect them).
    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        write(Self.line(event, label: label, metadata: metadata, time: Date()))
    }

    static func line(_ event: LogEvent, label: String, metadata base: Logger.Metadata, time: Date) -> String {
        var metadata = base
        for (key, value) in event.metadata ?? [:] { metadata[key] = value }
        let message = event.message.description
        var fields: [(String, String)] = [("time", time.ISO8601Format(Date.ISO8601FormatStyle(includingFractionalSeconds: true))),
                                          ("level", event.level.rawValue)]
        if let job = metadata.removeValue(forKey: "job_id")?.description ?? jobID(in: message) { fields.append(("job_id", job)) }
        if let worker = metadata.removeValue(forKey: "worker") { fields.append(("worker", worker.description)) }
        if let request = metadata.removeValue(forKey: "hb.request.id") { fields.append(("request_id", request.description)) }
        fields.append(("label", label))
        fields.append(("message", message))
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) { fields.append((key, value.description)) }
        var line = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { line += "," }
            JSONString.quote(key, JSONString.plain, into: &line)
            line += ":"
            JSONString.quote(value, JSONString.plain, into: &line)
        }
        return line + "}\n"
    }

    /// The id after a leading `job `: `job ID: ...`, `job ID was ...`.
    static func jobID(in message: String) -> String? {
        guard message.hasPrefix("job ") else { return nil }
        let id = message.dropFirst(4).prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }
        let rest = message.dropFirst(4 + id.count)
        guard !id.isEmpty, rest.hasPrefix(":") || rest.hasPrefix(" ") else { return nil }
        return String(id)
    }

    /// A whole line to stderr in one write call (short lines from several threads do not interleave).
    @Sendable public static func standardError(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }
}
