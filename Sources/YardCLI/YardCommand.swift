import ArgumentParser
import Foundation
import YardDomain

/// `yard`: the command line. It parses arguments and delegates: to the
/// server over HTTP for job commands, to `Yard` for `yard up`.
public struct YardCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "yard",
        abstract: "Trainyard: train Ultralytics YOLO and RT-DETR models as a service.",
        version: "trainyard \(Trainyard.version)",
        subcommands: [Up.self, Serve.self, Server.self, WorkerCommand.self, Workers.self, Submit.self, SweepCommand.self, Sweeps.self, Jobs.self, Show.self, Logs.self, Events.self, Webhooks.self, Stop.self, Resume.self, Predict.self, Models.self, LineageCommand.self, RerunCommand.self, Doctor.self, Datasets.self, Secrets.self, BackupCommand.self, RestoreCommand.self, GCCommand.self, Tracking.self,
                      Users.self, Tokens.self, Audit.self]
    )

    public init() {}
}

/// Options every client command shares.
struct ServerOptions: ParsableArguments {
    @Option(help: "Server URL (default: $YARD_SERVER, else http://127.0.0.1:8787).")
    var server: String?
    @Option(help: "PEM file of the CA an https server's certificate must chain to (default: $YARD_CA, else the system's roots).")
    var ca: String?

    var client: APIClient { ca.map { APIClient(server: server, ca: $0) } ?? APIClient(server: server) }
}

/// Runs a command body; a user-facing error is printed on one line and the
/// command exits non-zero, never with a stack trace.
func reporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as YardError {
        Output.error(error.message)
        throw ExitCode(error.code == .notFound ? 4 : 1)
    } catch is CancellationError {
        throw ExitCode(130)
    } catch {
        Output.error("\(error)".split(separator: "\n").first.map(String.init) ?? "unexpected error")
        throw ExitCode(1)
    }
}
