import ArgumentParser
import Foundation
import YardDomain
import YardEngine

/// `yard predict JOB SOURCE`: runs a finished job's best weights (or a
/// weights file) on images on this machine, with the engine's Python, and
/// says what it found in each. A job id asks the server where its weights
/// are; a `.pt` path needs no server.
struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a job's best weights on an image or a folder of images and print what each holds.")

    @Argument(help: "Job id, or a weights file (.pt).") var id: String
    @Argument(help: "An image or a folder of images.") var source: String
    @Option(name: .customLong("save-dir"), help: "Where the annotated copies go (default: predictions/JOB_ID).") var saveDir: String?
    @Option(help: "Smallest confidence to report.") var conf = 0.25
    @Flag(help: "Use the last weights instead of the best.") var last = false
    @Option(help: "Python interpreter with the engine's requirements.") var python: String?
    @OptionGroup var server: ServerOptions

    func validate() throws {
        guard (0...1).contains(conf) else { throw ValidationError("--conf must be between 0 and 1") }
    }

    func run() async throws {
        try await reporting {
            let weights = try await self.weights()
            let source = URL(fileURLWithPath: source).standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: source) else {
                throw YardError(.invalidInput, field: "source", "no image or folder at \(source)")
            }
            // predictions/JOB for DATA/runs/JOB/weights/best.pt, else the file's name.
            let folder = URL(fileURLWithPath: weights).deletingLastPathComponent()
            let name = !id.hasSuffix(".pt") ? id
                : folder.lastPathComponent == "weights" ? folder.deletingLastPathComponent().lastPathComponent
                : URL(fileURLWithPath: weights).deletingPathExtension().lastPathComponent
            let saveDir = URL(fileURLWithPath: saveDir ?? "predictions/\(name)").standardizedFileURL.path
            // Weights in DATA/runs/JOB/weights/: that data folder keeps Ultralytics' offline settings.
            var dataDirectory = URL(fileURLWithPath: weights).deletingLastPathComponent().appendingPathComponent("../../..").standardizedFileURL.path
            if !FileManager.default.fileExists(atPath: dataDirectory + "/ultralytics") { dataDirectory = EngineEnvironment.cacheDirectory }
            let engine = EngineEnvironment.resolve(python: python, dataDirectory: dataDirectory)
            let status = try engine.runAttached(["predict", "--model", weights, "--source", source, "--save-dir", saveDir, "--conf", String(conf)])
            if status != 0 { throw ExitCode(status) }
        }
    }

    /// The weights file: the argument itself, else the job's best (or last) weights.
    private func weights() async throws -> String {
        if id.hasSuffix(".pt") {
            let path = URL(fileURLWithPath: id).standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: path) else { throw YardError(.notFound, field: "weights", "no weights file at \(path)") }
            return path
        }
        let detail = try await server.client.get("/api/jobs/\(id)", as: JobDetail.self)
        guard let weights = last ? detail.job.lastWeights : detail.job.bestWeights ?? detail.job.lastWeights else {
            throw YardError(.conflict, field: "job", "job \(id) has no weights yet (\(detail.state.rawValue)); wait for it to finish an epoch")
        }
        guard FileManager.default.fileExists(atPath: weights) else {
            throw YardError(.notFound, field: "weights", "\(weights) is not on this machine; run yard predict on the server's host")
        }
        return weights
    }
}
