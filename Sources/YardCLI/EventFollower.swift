import AsyncHTTPClient
import Foundation
import NIOCore
import YardDomain

/// Reads a job's Server-Sent Events, reconnecting with the last event id
/// when the connection drops, until the job ends.
struct EventFollower {
    let client: APIClient
    let jobID: String

    struct Event: Sendable {
        var id: Int64
        var type: String
        var data: JSONValue
    }

    func follow(_ handle: (Event) throws -> Void) async throws {
        var lastID: Int64 = 0
        var failures = 0
        while true {
            do {
                let response = try await client.execute(client.request(.GET, "/api/jobs/\(jobID)/events?after=\(lastID)"),
                                                        timeout: .hours(24 * 30))
                if response.status.code >= 400 {
                    let body = try await response.body.collect(upTo: 1 << 20)
                    try APIClient.check(response.status, Data(buffer: body))
                }
                var parser = SSEParser()
                for try await chunk in response.body {
                    for event in parser.feed(String(buffer: chunk)) {
                        lastID = event.id
                        failures = 0
                        try handle(event)
                    }
                }
                return
            } catch let error as YardError where error.code != .unavailable {
                throw error
            } catch {
                failures += 1
                if failures > 5 { throw error }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// Splits an SSE byte stream into events (id, event, data fields).
struct SSEParser {
    private var buffer = ""
    private var id: Int64 = 0
    private var type = "message"
    private var data = ""

    mutating func feed(_ text: String) -> [EventFollower.Event] {
        buffer += text
        var events: [EventFollower.Event] = []
        while let newline = buffer.firstIndex(of: "\n") {
            let line = String(buffer[..<newline])
            buffer = String(buffer[buffer.index(after: newline)...])
            if line.isEmpty {
                if !data.isEmpty, let value = try? JSONDecoder().decode(JSONValue.self, from: Data(data.utf8)) {
                    events.append(.init(id: id, type: type, data: value))
                }
                type = "message"
                data = ""
            } else if line.hasPrefix("id: ") {
                id = Int64(line.dropFirst(4)) ?? id
            } else if line.hasPrefix("event: ") {
                type = String(line.dropFirst(7))
            } else if line.hasPrefix("data: ") {
                data += String(line.dropFirst(6))
            }
        }
        return events
    }
}
