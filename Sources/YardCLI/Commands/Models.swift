import ArgumentParser
import Foundation
import YardDomain

struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The model registry: register a job's weights, list versions, set aliases.",
        subcommands: [List.self, Register.self, Alias.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered versions and their aliases.")
        @Argument(help: "Only this model.") var name: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var server: ServerOptions

        struct Versions: Codable { var versions: [ModelVersion] }

        func run() async throws {
            try await reporting {
                let query = name.map { "?name=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? ""
                let list = try await server.client.get("/api/models\(query)", as: Versions.self)
                if json { return try Output.json(list) }
                if list.versions.isEmpty { return Output.line("no registered models; `yard models register JOB_ID NAME` adds one") }
                Table.print(header: ["MODEL", "VERSION", "ALIASES", "JOB", "MLFLOW RUN"],
                            rows: list.versions.map { [$0.name, $0.version, $0.aliases.joined(separator: ","), $0.jobID, $0.runID] })
            }
        }
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a succeeded job's best weights as a new version in MLflow's registry.")
        @Argument(help: "Job id.") var jobID: String
        @Argument(help: "Registered model name.") var name: String
        @Option(help: "Also point this alias (e.g. champion) at the new version.") var alias: String?
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                var body: [String: String] = ["job_id": jobID, "name": name]
                if let alias { body["alias"] = alias }
                let data = try await server.client.send(.POST, "/api/models", body: try JSONEncoder().encode(body))
                let version = try APIClient.decoder.decode(ModelVersion.self, from: data)
                Output.line("registered \(version.name) version \(version.version)\(alias.map { " (\($0))" } ?? "") from \(version.source)")
            }
        }
    }

    struct Alias: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Point an alias (champion, production, ...) at a version.")
        @Argument(help: "Registered model name.") var name: String
        @Argument(help: "Version number.") var version: String
        @Argument(help: "Alias.") var alias: String
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                let body = try JSONEncoder().encode(["alias": alias, "version": version])
                let path = "/api/models/\(name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? name)/aliases"
                _ = try await server.client.send(.POST, path, body: body)
                Output.line("\(name)@\(alias) → version \(version)")
            }
        }
    }
}
