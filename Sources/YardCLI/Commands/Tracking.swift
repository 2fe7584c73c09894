import ArgumentParser
import Foundation
import YardArtifacts
import YardDomain
import YardStore
import YardTracker

/// `yard tracking resync`: MLflow rebuilt from Trainyard's records.
struct Tracking: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracking",
        abstract: "MLflow from Trainyard's records.",
        subcommands: [Resync.self])

    struct Resync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resync",
            abstract: "Recreate every run (params, per-epoch metrics, tags, artifacts) and the registry's versions and aliases in an MLflow server.",
            discussion: """
                For an MLflow whose database was lost, or a move to a new server. Runs beside the server, on the machine that \
                holds the data dir (it reads the store and the artifact folder). Idempotent: runs already there (found by their \
                trainyard.job_id tag) and versions already made are left alone, so a second resync adds nothing; a run a cut-off \
                resync left half-made is rebuilt. Credentials: user:pass@ in --to, or MLFLOW_TRACKING_TOKEN / \
                MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.
                """)

        @Option(help: "The MLflow server to fill (http://host:5000).") var to: String
        @Option(help: "Only this experiment's jobs (and the versions registered from them).") var experiment: String?
        @Option(name: .customLong("data-dir"), help: "The data dir of `yard up`.") var dataDir = ".yard"

        func run() async throws {
            try await reporting {
                guard let url = URL(string: to), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
                      let host = url.host, !host.isEmpty else {
                    // Not echoed: what was given may hold a password.
                    throw YardError(.invalidInput, field: "--to", "--to must be an MLflow server's http(s) URL, e.g. http://mlflow:5000")
                }
                // Named by scheme, host and port only: the URL may carry a password.
                let target = "\(scheme)://\(host)\(url.port.map { ":\($0)" } ?? "")"
                let data = URL(fileURLWithPath: dataDir).standardizedFileURL.path
                let database = data + "/yard.sqlite"
                guard FileManager.default.fileExists(atPath: database) else {
                    throw YardError(.notFound, field: "--data-dir", "--data-dir: \(data) holds no Trainyard database (yard.sqlite); pass the data dir of `yard up`")
                }
                let store = SQLiteJobStore(database: try YardDatabase(path: database, readers: 2))
                let artifacts = LocalArtifactStore(root: data + "/artifacts")
                let environment = ProcessInfo.processInfo.environment
                let client = MLflowClient(trackingURI: to, token: environment["MLFLOW_TRACKING_TOKEN"],
                                          username: environment["MLFLOW_TRACKING_USERNAME"], password: environment["MLFLOW_TRACKING_PASSWORD"])
                let resync = MLflowResync(client: client, store: store, experiment: experiment) { key in try? artifacts.path(for: key) }
                let result: MLflowResync.Result
                do {
                    result = try await resync.run { Output.line(Output.printable($0)) }
                } catch let error as YardError {
                    throw error
                } catch let error as MLflowClient.APIError {
                    throw YardError(.unavailable, field: "--to", "--to: MLflow at \(target) refused a call: \(Output.printable(String(error.description.prefix(300))))")
                } catch {
                    throw YardError(.unavailable, field: "--to", "--to: MLflow at \(target) cannot be reached (\(Output.printable(String("\(error)".prefix(120))))); is `mlflow server` running there?")
                }
                var summary = "runs: \(result.runsCreated) created, \(result.runsPresent) already there"
                if result.runsRebuilt > 0 { summary += ", \(result.runsRebuilt) rebuilt (cut off before)" }
                if result.jobsSkipped > 0 { summary += ", \(result.jobsSkipped) queued jobs not started yet" }
                summary += "; \(result.metrics) metric points, \(result.artifacts) artifacts"
                if result.artifactsMissing > 0 { summary += " (\(result.artifactsMissing) no longer on disk)" }
                summary += "; versions: \(result.versionsCreated) created, \(result.versionsPresent) already there"
                if result.versionsSkipped > 0 { summary += ", \(result.versionsSkipped) of jobs outside this resync" }
                summary += "; \(result.aliases) aliases set"
                Output.line(summary)
                Output.line(result.added == 0 ? "\(target) already held everything: nothing added" : "\(target) now holds Trainyard's runs and registry")
            }
        }
    }
}
