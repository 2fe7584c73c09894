import ArgumentParser
import Foundation
import YardWebhooks

struct Webhooks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the webhook targets (URL shown as scheme and host): filter, last delivery, last error, deliveries waiting.")

    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await reporting {
            let status = try await server.client.get("/api/webhooks", as: WebhookStatus.self)
            if json { return try Output.json(status) }
            if let note = status.note { Output.line("note: \(note)") }
            if status.targets.isEmpty {
                return Output.line("no webhook targets; give `yard up --webhook URL`, or `notify: URL` in a job or sweep config")
            }
            let rows = status.targets.map { target -> [String] in
                let last = target.lastSequence.map { "event \($0) at \(target.lastTime ?? "?") (\(target.lastStatus.map(String.init) ?? "-"))" } ?? "-"
                return [target.key, target.url, target.events?.joined(separator: ",") ?? "all", last, String(target.pending),
                        target.lastError.map { String($0.prefix(80)) } ?? "-"]
            }
            Table.print(header: ["TARGET", "URL", "EVENTS", "LAST DELIVERY", "PENDING", "LAST ERROR"], rows: rows)
            Output.line("log read up to event \(status.cursor); \(status.pending) deliveries waiting")
        }
    }
}
