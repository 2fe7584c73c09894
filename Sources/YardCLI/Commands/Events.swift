import ArgumentParser
import AsyncHTTPClient
import Foundation
import YardDomain

/// `yard events [-f] [--after SEQ]`: the one log of the whole system, one
/// line an event (`--json`: the event as the API sends it).
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the event log: every change of a job, sweep, model or dataset, one line each, in order.")

    @Flag(name: .shortAndLong, help: "Keep printing new events as they happen (reconnects where it left off).") var follow = false
    @Option(help: "Only events after this sequence number.") var after: Int64 = 0
    @Option(help: "Only events about job, sweep, model, dataset, worker, user or audit.") var entity: String?
    @Option(help: "Only events about this job or sweep id, model or dataset name.") var id: String?
    @Option(help: "Only these event types, comma-separated (state, epoch, alias, version, ...).") var type: String?
    @Option(help: "Only state changes into this state (failed, succeeded, finished, ...).") var state: String?
    @Option(help: "Only events of the jobs and sweeps of this experiment.") var experiment: String?
    @Flag(help: "Print each event as JSON.") var json = false
    @OptionGroup var server: ServerOptions

    func validate() throws {
        guard after >= 0 else { throw ValidationError("--after must be a sequence number (0 or more)") }
        if let entity { do { _ = try EventEntity.parse(entity, field: "--entity") } catch { throw ValidationError(error.message) } }
    }

    func run() async throws {
        try await reporting {
            var query = ["follow=\(follow)"]
            for (key, value) in [("entity", entity), ("id", id), ("type", type), ("state", state), ("experiment", experiment)] {
                if let value { query.append("\(key)=\(value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")") }
            }
            var cursor = after
            var failures = 0
            while true {
                do {
                    let client = server.client
                    let response = try await client.execute(client.request(.GET, "/api/events?after=\(cursor)&" + query.joined(separator: "&")),
                                                            timeout: .hours(24 * 30))
                    if response.status.code >= 400 {
                        try APIClient.check(response.status, Data(buffer: try await response.body.collect(upTo: 1 << 20)))
                    }
                    var parser = SSEParser()
                    for try await chunk in response.body {
                        for event in parser.feed(String(buffer: chunk)) {
                            if event.type == "truncated" {
                                Output.line("-- \(event.data["message"]?.stringValue ?? "older events were removed by retention")")
                                continue
                            }
                            cursor = event.id
                            failures = 0
                            Output.line(json ? Self.jsonLine(event.data) : Self.line(event.data))
                        }
                    }
                    if !follow { return }
                } catch let error as YardError where error.code != .unavailable {
                    throw error
                } catch {
                    guard follow else { throw error }
                    failures += 1
                    if failures > 30 { throw error }
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    static func jsonLine(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    /// `SEQ TIME ENTITY ID TYPE  what changed`.
    static func line(_ event: JSONValue) -> String {
        let data = event["data"] ?? .null
        let what: String
        switch (event["entity"]?.stringValue, event["type"]?.stringValue) {
        case ("model"?, "alias"?):
            what = "\(data["alias"]?.stringValue ?? "?") → \(data["version"]?.stringValue.map { "v" + $0 } ?? "removed") (was \(data["previous"]?.stringValue.map { "v" + $0 } ?? "none"); \(data["reason"]?.stringValue ?? ""))"
        case ("model"?, "version"?):
            what = "v\(data["version"]?.stringValue ?? "?") from job \(data["job_id"]?.stringValue ?? "?")"
        case ("dataset"?, "version"?):
            what = "v\(data["number"]?.intValue.map(String.init) ?? "?") (\(data["files"]?.intValue ?? 0) files, \(data["errors"]?.intValue ?? 0) errors)"
        case ("sweep"?, "trial"?):
            let value = data["value"]?.doubleValue.map { String(format: " %.4f", $0) } ?? ""
            what = "trial \(data["number"]?.intValue.map(String.init) ?? "?") → \(data["state"]?.stringValue ?? "?")\(value) (job \(data["job_id"]?.stringValue ?? "?"))"
        case ("worker"?, "state"?):
            what = "→ \(data["state"]?.stringValue ?? "?") on \(data["host"]?.stringValue ?? "?")" + (data["job_id"]?.stringValue.map { " (job \($0))" } ?? "")
        case ("audit"?, "request"?):
            what = "\(data["method"]?.stringValue ?? "?") \(data["path"]?.stringValue ?? "?") → \(data["status"]?.intValue.map(String.init) ?? "?")"
                + (data["address"]?.stringValue.map { " from \($0)" } ?? "")
        case (_, "state"?):
            let message = data["message"]?.stringValue.map { ": \($0.prefix(120))" } ?? ""
            what = "→ \(data["state"]?.stringValue ?? "?")\(message)"
        case (_, "epoch"?):
            what = "epoch \(data["epoch"]?.intValue.map(String.init) ?? "?")" + (data["epochs"]?.intValue.map { "/\($0)" } ?? "")
        default:
            what = jsonLine(data).prefix(120).description
        }
        let time = event["time"]?.stringValue ?? ""
        return Output.printable("\(event["seq"]?.intValue ?? 0) \(time) \(event["entity"]?.stringValue ?? "?") \(event["id"]?.stringValue ?? "?") \(event["type"]?.stringValue ?? "?")  \(what)")
    }
}
