import ArgumentParser
import Foundation
import YardDomain

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a job config and queue it.")

    @Argument(help: "The job config (YAML or JSON).") var config: String
    @Flag(help: "Follow the job with a progress bar until it ends; exit 0 only if it succeeded.") var wait = false
    @Flag(help: "Print the submitted job as JSON.") var json = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await reporting {
            let document = try Self.load(config)
            let body = try JSONEncoder().encode(JSONValue.object(document.document))
            var headers: [String: String] = [:]
            if let git = GitState.near(config) { headers.merge(git.headers) { $1 } }
            let data = try await server.client.send(.POST, "/api/jobs", body: body, headers: headers)
            let created = try JSONDecoder().decode([String: String].self, from: data)
            let id = created["id"] ?? "?"
            if json { Output.line(String(decoding: data, as: UTF8.self)) } else { Output.line("submitted \(id)") }
            if wait { try await WaitForJob(client: server.client, jobID: id).run() }
        }
    }

    /// Reads and validates a config locally, resolving relative paths against
    /// the config file's folder, so mistakes are caught before anything is sent.
    static func load(_ path: String) throws -> JobConfig {
        let url = URL(fileURLWithPath: path)
        let text = try ConfigFile.read(path)
        let parser = JobConfigParser(baseDirectory: url.deletingLastPathComponent().path) { FileManager.default.fileExists(atPath: $0) }
        return try parser.parse(text, source: path)
    }
}

/// `--wait`: follows events, then prints a summary; the exit code tells
/// succeeded (0), failed (1) or stopped (3).
struct WaitForJob {
    let client: APIClient
    let jobID: String

    func run() async throws {
        var view = ProgressView()
        try await EventFollower(client: client, jobID: jobID).follow { event in view.handle(event) }
        view.finish()
        let job = try await client.get("/api/jobs/\(jobID)", as: JobDetail.self)
        Summary.print(job)
        switch job.state {
        case .succeeded: return
        case .stopped: throw ExitCode(3)
        default: throw ExitCode(1)
        }
    }
}
