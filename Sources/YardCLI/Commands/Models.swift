import ArgumentParser
import Foundation
import YardDomain

struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The model registry: register a job's weights, list versions, move aliases, roll back, export to ONNX.",
        subcommands: [List.self, Register.self, Alias.self, Rollback.self, History.self, Export.self, Preprocess.self])

    static func path(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? name
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered versions, their aliases and the metrics of the job behind each.")
        @Argument(help: "Only this model.") var name: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var server: ServerOptions

        struct Versions: Codable { var versions: [ModelVersion] }

        func run() async throws {
            try await reporting {
                let query = name.map { "?name=\(Models.path($0))" } ?? ""
                let list = try await server.client.get("/api/models\(query)", as: Versions.self)
                if json { return try Output.json(list) }
                if list.versions.isEmpty { return Output.line("no registered models; `yard models register JOB_ID NAME` adds one") }
                Table.print(header: ["MODEL", "VERSION", "ALIASES", "JOB", "mAP50-95", "SHA256", "EXPORTS", "MLFLOW", "HEALTH CHECK"],
                            rows: list.versions.map { v in
                                let map = v.metrics?["metrics/mAP50-95(B)"] ?? v.metrics?["metrics/accuracy_top1"]
                                return [v.name, v.version, v.aliases.joined(separator: ","), v.jobID,
                                        map.map { String(format: "%.4f", $0) } ?? "-", String((v.sha256 ?? "-").prefix(12)),
                                        v.exports.map { $0.keys.sorted().joined(separator: ",") } ?? "-",
                                        v.mlflowVersion.map { "v\($0)" } ?? (v.runID.isEmpty ? "-" : "pending"),
                                        v.health.map { $0.ok ? "ok (\(Int($0.latencyMilliseconds ?? 0)) ms)" : "failed: \(($0.reason ?? "?").prefix(80))" } ?? "-"]
                            })
            }
        }
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a succeeded job's best weights as the next version of a model (mirrored to MLflow when the job has it).")
        @Argument(help: "Job id.") var jobID: String
        @Argument(help: "Registered model name.") var name: String
        @Option(help: "Also point this alias (e.g. production) at the new version.") var alias: String?
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                var body: [String: String] = ["job_id": jobID, "name": name]
                if let alias { body["alias"] = alias }
                let data = try await server.client.send(.POST, "/api/models", body: try JSONEncoder().encode(body), timeout: .seconds(600))
                let version = try APIClient.decoder.decode(ModelVersion.self, from: data)
                Output.line("registered \(version.name) version \(version.version)\(alias.map { " (\($0))" } ?? "") from \(version.source), sha256 \(version.sha256?.prefix(12) ?? "?")")
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
                let data = try await server.client.send(.POST, "/api/models/\(Models.path(name))/aliases", body: body, timeout: .seconds(600))
                let change = try APIClient.decoder.decode(AliasChange.self, from: data)
                Output.line("\(name)@\(alias) → version \(version)\(change.previous.map { " (was \($0))" } ?? "")")
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Point an alias back at the version it pointed at before.")
        @Argument(help: "Registered model name.") var name: String
        @Argument(help: "Alias (default production).") var alias = "production"
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                let data = try await server.client.send(.POST, "/api/models/\(Models.path(name))/aliases/\(Models.path(alias))/rollback", timeout: .seconds(600))
                let change = try APIClient.decoder.decode(AliasChange.self, from: data)
                Output.line("\(name)@\(alias) → version \(change.version ?? "-") (rolled back from \(change.previous ?? "-"))")
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export a version's weights (ONNX, dynamic axes) on the server; `yard predict --runtime onnx` then serves it with onnxruntime.")
        @Argument(help: "Registered model name.") var name: String
        @Argument(help: "Version number.") var version: String
        @Option(help: "Format: onnx.") var format = "onnx"
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                try ExportedWeights.validate(format: format)
                let data = try await server.client.send(.POST, "/api/models/\(Models.path(name))/versions/\(Models.path(version))/export?format=\(Models.path(format))",
                                                        timeout: .seconds(900))
                let exported = try APIClient.decoder.decode(ModelVersion.self, from: data)
                if json { return try Output.json(exported) }
                guard let made = exported.exports?[format] else { throw YardError(.unavailable, field: "format", "the server answered without the \(format) export") }
                Output.line("\(name) version \(version) as \(format): sha256 \(made.sha256.prefix(12)), \(made.size >> 10) KB\(made.exportMilliseconds.map { String(format: ", exported in %.1f s", $0 / 1000) } ?? "")")
            }
        }
    }

    struct Preprocess: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or set a model's preprocessing for serving: face blurring (OpenCV's Haar cascade), off by default.")
        @Argument(help: "Registered model name.") var name: String
        @Flag(name: .customLong("blur-faces"), inversion: .prefixedNo, help: "Blur faces before every predict of this model.")
        var blurFaces: Bool?
        @Option(name: .customLong("scale-factor"), help: "Cascade scale step (above 1; smaller finds more, slower).") var scaleFactor: Double?
        @Option(name: .customLong("min-neighbors"), help: "Detections a face needs (higher: fewer false faces).") var minNeighbors: Int?
        @Option(name: .customLong("min-size"), help: "Smallest face, in pixels.") var minSize: Int?
        @Option(name: .customLong("detect-side"), help: "Long side the image is scaled to for detection.") var detectSide: Int?
        @OptionGroup var server: ServerOptions

        struct Body: Codable {
            var blur_faces: FaceBlur?

            /// `blur_faces` always written (null: off); the server refuses a body without it.
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                if let blur_faces { try c.encode(blur_faces, forKey: .blur_faces) } else { try c.encodeNil(forKey: .blur_faces) }
            }
        }

        func run() async throws {
            try await reporting {
                let path = "/api/models/\(Models.path(name))/settings"
                var settings = try await server.client.get(path, as: Body.self)
                let tuned = scaleFactor != nil || minNeighbors != nil || minSize != nil || detectSide != nil
                if blurFaces != nil || tuned {
                    if blurFaces == false {
                        settings.blur_faces = nil
                    } else {
                        var blur = settings.blur_faces ?? FaceBlur()
                        if let scaleFactor { blur.scaleFactor = scaleFactor }
                        if let minNeighbors { blur.minNeighbors = minNeighbors }
                        if let minSize { blur.minSize = minSize }
                        if let detectSide { blur.detectSide = detectSide }
                        try blur.validate()
                        settings.blur_faces = blur
                    }
                    let data = try await server.client.send(.PUT, path, body: try JSONEncoder().encode(settings))
                    settings = try APIClient.decoder.decode(Body.self, from: data)
                }
                if let blur = settings.blur_faces {
                    Output.line("\(name): faces are blurred (scale factor \(blur.scaleFactor), min neighbors \(blur.minNeighbors), min size \(blur.minSize) px, detected at \(blur.detectSide) px)")
                } else {
                    Output.line("\(name): no preprocessing (`yard models preprocess \(name) --blur-faces` turns face blurring on)")
                }
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every alias move of a model, newest first.")
        @Argument(help: "Registered model name.") var name: String
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var server: ServerOptions

        struct Show: Codable { var history: [AliasChange] }

        func run() async throws {
            try await reporting {
                let show = try await server.client.get("/api/models/\(Models.path(name))", as: Show.self)
                if json { return try Output.json(show.history) }
                if show.history.isEmpty { return Output.line("\(name) has no aliases yet; `yard models alias \(name) VERSION production` sets one") }
                let format = ISO8601DateFormatter()
                Table.print(header: ["TIME", "ALIAS", "VERSION", "WAS", "WHY"],
                            rows: show.history.map { [format.string(from: $0.time), $0.alias, $0.version ?? "(removed)", $0.previous ?? "-", $0.reason] })
            }
        }
    }
}
