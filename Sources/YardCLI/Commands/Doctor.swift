import ArgumentParser
import Foundation
import YardDomain
import YardEngine

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check this machine can train: engine Python, Ultralytics/torch, CUDA, data dir, font.")

    @Option(help: "Python interpreter to check (default: $YARD_PYTHON, else the setup's venv).") var python: String?
    @Option(name: .customLong("data-dir"), help: "Data folder to check.") var dataDir = ".yard"
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reporting {
            let dataDirectory = URL(fileURLWithPath: dataDir).standardizedFileURL.path
            let engine = EngineEnvironment.resolve(python: python, dataDirectory: dataDirectory)
            var report: [String: JSONValue] = ["python_path": .string(engine.python), "engine_dir": .string(engine.engineDirectory)]
            var problems: [String] = []

            let fm = FileManager.default
            try? fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            let probe = dataDirectory + "/.doctor-\(getpid())"
            let writable = fm.createFile(atPath: probe, contents: Data())
            try? fm.removeItem(atPath: probe)
            report["data_dir"] = .string(dataDirectory)
            report["data_dir_writable"] = .bool(writable)
            if !writable { problems.append("data dir \(dataDirectory) is not writable; pass --data-dir with a folder you own") }

            if !fm.fileExists(atPath: engine.engineDirectory + "/trainyard_engine/__main__.py") {
                problems.append("engine sources not found at \(engine.engineDirectory); set YARD_ENGINE_DIR to the repo's engine/ folder")
            }
            let result = try? engine.runTool(["doctor"])
            if let result, result.status == 0, let data = result.stdout.split(separator: "\n").last.map({ Data($0.utf8) }),
               case .object(let info)? = try? JSONDecoder().decode(JSONValue.self, from: data) {
                for (key, value) in info where key != "problems" { report[key] = value }
                problems += (info["problems"]?.arrayValue ?? []).compactMap(\.stringValue)
            } else {
                let why = result.map { $0.stderr.split(separator: "\n").last.map(String.init) ?? "exit \($0.status)" } ?? "it did not start"
                problems.append("the engine's Python (\(engine.python)) cannot run the engine: \(why); run scripts/setup.sh or pass --python")
            }
            // The warm engine: started once here as a worker would, its imports timed.
            let warm = WarmEngineSetting.enabled(flag: false)
            report["warm_engine"] = .bool(warm)
            if warm, problems.isEmpty {
                if let seconds = try? engine.warmUpSeconds() {
                    report["warm_engine_imports_seconds"] = .double(seconds)
                } else {
                    problems.append("the engine cannot start warm (train --warm); start workers with --no-warm-engine and report it")
                }
            }
            report["problems"] = .array(problems.map { .string($0) })

            if json {
                try Output.json(JSONValue.object(report))
            } else {
                Output.line("python       \(engine.python) (\(report["python"]?.stringValue ?? "?"))")
                Output.line("engine       \(engine.engineDirectory)")
                Output.line("ultralytics  \(report["ultralytics"]?.stringValue ?? "missing")")
                Output.line("torch        \(report["torch"]?.stringValue ?? "missing")")
                let devices = report["cuda_devices"]?.arrayValue ?? []
                Output.line("cuda devices \(devices.isEmpty ? "none (training runs on CPU)" : devices.compactMap { $0["name"]?.stringValue }.joined(separator: ", "))")
                Output.line("onnx export  \(report["onnx"]?.stringValue != nil && report["onnxruntime"]?.stringValue != nil ? "available" : "missing onnx/onnxruntime")")
                Output.line("font         \(report["font"]?.boolValue == true ? "present" : "missing")")
                Output.line("data dir     \(dataDirectory) (\(writable ? "writable" : "NOT writable"))")
                if !warm {
                    Output.line("warm engine  off (YARD_WARM_ENGINE=0): each job starts its engine and imports")
                } else if let seconds = report["warm_engine_imports_seconds"]?.doubleValue {
                    Output.line("warm engine  on: each worker's next engine is started ahead of need (its imports took \(String(format: "%.1f", seconds)) s); --no-warm-engine turns it off")
                }
                for problem in problems { Output.line("problem: \(problem)") }
                if problems.isEmpty { Output.line("ok: ready to train") }
            }
            if !problems.isEmpty { throw ExitCode(1) }
        }
    }
}

extension Datasets {
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a small synthetic dataset (squares and discs on noise) that needs no download.")

        @Argument(help: "Folder to write.") var folder: String
        @Option(help: "detect (images/labels + data.yaml) or classify (train/val class folders).") var kind = "detect"
        @Option(help: "Training images (per class for classify).") var train: Int?
        @Option(help: "Validation images (per class for classify).") var val: Int?
        @Option(help: "Python interpreter with the engine's requirements.") var python: String?

        func validate() throws {
            guard ["detect", "classify"].contains(kind) else { throw ValidationError("--kind must be detect or classify") }
        }

        func run() async throws {
            try await reporting {
                let engine = EngineEnvironment.resolve(python: python, dataDirectory: ".yard")
                var args = ["demo-data", URL(fileURLWithPath: folder).standardizedFileURL.path, "--kind", kind]
                if let train { args += ["--train", "\(train)"] }
                if let val { args += ["--val", "\(val)"] }
                let result = try engine.runTool(args)
                guard result.status == 0 else {
                    throw YardError(.unavailable, "cannot write the demo dataset: \(result.stderr.split(separator: "\n").last ?? "exit \(result.status)")")
                }
                let path = (try? JSONDecoder().decode([String: String].self, from: Data(result.stdout.utf8)))?["path"] ?? folder
                Output.line(kind == "detect" ? "wrote \(path) (train.data for a detection job)" : "wrote \(path) (train.data for a classification job)")
            }
        }
    }
}
