import ArgumentParser
import Foundation
import YardDomain
import YardEngine
import YardServing

/// `yard predict NAME[@ALIAS|@vN] IMAGE...`: the server's predictor pool
/// answers (`POST /api/predict/NAME`), as any client of the API would get.
/// `yard predict JOB SOURCE` runs a finished job's best weights (or a
/// weights file) on this machine, with the engine's Python; a `.pt` path
/// needs no server.
struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a registered model (NAME[@alias|@vN], on the server), a job's best weights or a .pt file on images and print what each holds.")

    @Argument(help: "Registered model (NAME, NAME@alias, NAME@v3), job id, or a weights file (.pt).") var id: String
    @Argument(help: "An image or a folder of images (several images for a registered model).") var sources: [String]
    @Flag(help: "Print the server's JSON answer (registered models).") var json = false
    var source: String { sources[0] }
    @Option(name: .customLong("save-dir"), help: "Where the annotated copies go (default: predictions/JOB_ID).") var saveDir: String?
    @Option(help: "Smallest confidence to report.") var conf = 0.25
    @Flag(help: "Use the last weights instead of the best.") var last = false
    @Option(help: "Registered models: torch, or onnx (the version's ONNX export, `yard models export`).") var runtime: String?
    @Option(help: "Python interpreter with the engine's requirements.") var python: String?
    @OptionGroup var server: ServerOptions

    func validate() throws {
        guard (0...1).contains(conf) else { throw ValidationError("--conf must be between 0 and 1") }
        guard !sources.isEmpty else { throw ValidationError("give an image or a folder of images") }
    }

    struct Versions: Decodable { var versions: [ModelVersion] }

    func run() async throws {
        try await reporting {
            if !id.hasSuffix(".pt") {
                let name = String(id.split(separator: "@", maxSplits: 1).first ?? "")
                let query = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
                var registered = id.contains("@")
                if !registered { registered = !(try await server.client.get("/api/models?name=\(query)", as: Versions.self).versions.isEmpty) }
                if registered {
                    return try await served(name: name)
                }
            }
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

    /// Each image through `POST /api/predict/NAME`, one request per image.
    private func served(name: String) async throws {
        var query = ["conf=\(conf)"]
        // Checked here too, so a typo is said before any upload.
        if let runtime { query.append("runtime=\(try ServingRuntime.parse(runtime).rawValue)") }
        if let selector = id.split(separator: "@", maxSplits: 1).dropFirst().first {
            if selector.hasPrefix("v"), Int(selector.dropFirst()) != nil { query.append("version=\(selector.dropFirst())") }
            else { query.append("alias=\(selector)") }
        }
        var files: [String] = []
        for source in sources {
            var folder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source, isDirectory: &folder) else {
                throw YardError(.invalidInput, field: "source", "no image or folder at \(source)")
            }
            if folder.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: source)) ?? []
                files += names.sorted().filter { ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"].contains(($0 as NSString).pathExtension.lowercased()) }
                    .map { source + "/" + $0 }
            } else {
                files.append(source)
            }
        }
        let path = "/api/predict/\(name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? name)?" + query.joined(separator: "&")
        for file in files {
            guard let bytes = FileManager.default.contents(atPath: file) else { throw YardError(.invalidInput, field: "source", "cannot read \(file)") }
            let data = try await server.client.send(.POST, path, body: bytes, headers: ["Content-Type": "application/octet-stream"], timeout: .seconds(300))
            if json {
                Output.line(String(decoding: data, as: UTF8.self))
                continue
            }
            let answer = try JSONDecoder().decode(JSONValue.self, from: data)
            let image = answer["images"]?.arrayValue?.first
            let found: [String]
            if let top = image?["top"]?.arrayValue {
                found = top.prefix(1).map { "\($0["name"]?.stringValue ?? "?") \(String(format: "%.2f", $0["score"]?.doubleValue ?? 0))" }
            } else {
                found = (image?["boxes"]?.arrayValue ?? []).map { "\($0["name"]?.stringValue ?? "?") \(String(format: "%.2f", $0["score"]?.doubleValue ?? 0))" }
            }
            Output.line("\((file as NSString).lastPathComponent): \(found.isEmpty ? "nothing" : found.joined(separator: ", ")) (\(name) v\(answer["version"]?.stringValue ?? "?") on \(answer["runtime"]?.stringValue ?? "torch"), \(Int.saturating(answer["timing_ms"]?["total"]?.doubleValue ?? 0)) ms)")
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

