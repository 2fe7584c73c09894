import Crypto
import Foundation
import YardDomain

/// Where the engine's Python and sources are, and the environment it runs in.
///
/// The interpreter is, in order: `--python`, `YARD_PYTHON`, the one a release
/// archive's `install.sh` chose (`PREFIX/share/trainyard/python`, beside the
/// installed engine), the venv that `scripts/setup.sh` built for the engine's
/// requirements file (`$TRAINYARD_CACHE/venv-<hash>`), else `python3` on PATH.
/// The last lets a GPU server use its existing CUDA environment with Ultralytics.
public struct EngineEnvironment: Sendable {
    public var python: String
    public var engineDirectory: String
    /// Ultralytics' private config folder (settings, font).
    public var ultralyticsDirectory: String

    public init(python: String, engineDirectory: String, ultralyticsDirectory: String) {
        self.python = python
        self.engineDirectory = engineDirectory
        self.ultralyticsDirectory = ultralyticsDirectory
    }

    public static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        return env["TRAINYARD_CACHE"] ?? (NSHomeDirectory() + "/.cache/trainyard")
    }

    /// Resolves the engine for this machine.
    public static func resolve(python explicit: String? = nil, dataDirectory: String) -> EngineEnvironment {
        let env = ProcessInfo.processInfo.environment
        let engine = env["YARD_ENGINE_DIR"] ?? defaultEngineDirectory()
        let python = explicit ?? env["YARD_PYTHON"] ?? installedPython(engineDirectory: engine)
            ?? venvPython(engineDirectory: engine) ?? "python3"
        return EngineEnvironment(python: python, engineDirectory: engine, ultralyticsDirectory: dataDirectory + "/ultralytics")
    }

    /// The engine folder of the source tree this binary was built from, or an
    /// installed copy beside the executable.
    static func defaultEngineDirectory() -> String {
        // argv[0] is only "yard" when found on PATH: ask the kernel where the binary is.
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first ?? ""
        let exe = URL(fileURLWithPath: path).resolvingSymlinksInPath()
        let installed = exe.deletingLastPathComponent().appendingPathComponent("../share/trainyard/engine").standardizedFileURL.path
        if FileManager.default.fileExists(atPath: installed + "/trainyard_engine/__main__.py") { return installed }
        // Sources/YardEngine/EngineEnvironment.swift → repository root
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("engine").path
    }

    /// `ENGINE/../python`: what `install.sh` of a release archive writes
    /// beside the engine it installs (a script that runs the venv it made or
    /// the `--python` it was given), so an installed `yard` needs no
    /// YARD_PYTHON, whoever's HOME (and cache) it runs with.
    public static func installedPython(engineDirectory: String) -> String? {
        let python = URL(fileURLWithPath: engineDirectory).deletingLastPathComponent().appendingPathComponent("python").path
        return FileManager.default.isExecutableFile(atPath: python) ? python : nil
    }

    /// `$TRAINYARD_CACHE/venv-<first 16 hex of sha256(requirements.txt)>/bin/python`, if built.
    public static func venvPython(engineDirectory: String) -> String? {
        guard let data = FileManager.default.contents(atPath: engineDirectory + "/requirements.txt") else { return nil }
        let hash = SHA256.hash(data: data).hex.prefix(16)
        let python = "\(cacheDirectory)/venv-\(hash)/bin/python"
        return FileManager.default.isExecutableFile(atPath: python) ? python : nil
    }

    /// What an engine started now is made of: the interpreter (the path
    /// given, where it leads, that file, and a venv's `pyvenv.cfg`), the
    /// engine's sources and requirements, and the extra environment. A warm
    /// engine made from another fingerprint is not used.
    public func fingerprint(extra: [String: String] = [:]) throws -> String {
        let fm = FileManager.default
        func stamp(_ path: String) -> String {
            var info = stat()
            guard stat(path, &info) == 0 else { return "\(path):-" }
            return "\(path):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        }
        var executable = python
        if !python.contains("/") {
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            executable = path.split(separator: ":").map { "\($0)/\(python)" }.first { fm.isExecutableFile(atPath: $0) } ?? python
        }
        let resolved = URL(fileURLWithPath: executable).resolvingSymlinksInPath().path
        var parts = [python, stamp(executable), stamp(resolved),
                     stamp(URL(fileURLWithPath: executable).deletingLastPathComponent().deletingLastPathComponent().path + "/pyvenv.cfg"),
                     stamp(engineDirectory + "/requirements.txt")]
        let sources = engineDirectory + "/trainyard_engine"
        guard let names = try? fm.contentsOfDirectory(atPath: sources) else {
            throw YardError(.unavailable, field: "engine", "cannot read the engine's sources in \(sources)")
        }
        parts += names.filter { $0.hasSuffix(".py") }.sorted().map { stamp(sources + "/" + $0) }
        parts += extra.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return SHA256.hash(data: Data(parts.joined(separator: "\n").utf8)).hex
    }

    /// The engine's environment: ours, plus its sources on PYTHONPATH and
    /// Ultralytics kept offline in a private config folder.
    public func processEnvironment(extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        let path = env["PYTHONPATH"].map { "\(engineDirectory):\($0)" } ?? engineDirectory
        env["PYTHONPATH"] = path
        env["PYTHONUNBUFFERED"] = "1"
        // Python 3.11+: the working folder is not put first on the module path.
        env["PYTHONSAFEPATH"] = "1"
        env["YARD_ULTRALYTICS_DIR"] = ultralyticsDirectory
        env["YOLO_CONFIG_DIR"] = ultralyticsDirectory
        env["YOLO_OFFLINE"] = "1"
        env["MPLBACKEND"] = "Agg"
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Runs an engine command with this process's terminal (its output is
    /// for the user, as it comes); returns its exit status.
    public func runAttached(_ arguments: [String]) throws -> Int32 {
        let process = try start(arguments) { _ in }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Starts a long-lived engine command (a sweep's study process); the
    /// caller sets its pipes in `configure`.
    public func startEngine(_ arguments: [String], extra: [String: String] = [:], configure: (Process) -> Void) throws -> Process {
        try start(arguments, extra: extra, configure: configure)
    }

    /// Starts `python -m trainyard_engine ARGUMENTS` in the engine's environment.
    private func start(_ arguments: [String], extra: [String: String] = [:], configure: (Process) -> Void) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-m", "trainyard_engine"] + arguments
        process.environment = processEnvironment(extra: extra)
        configure(process)
        do {
            try process.run()
        } catch {
            throw YardError(.unavailable, field: "python", "cannot run \(python): \(error.localizedDescription); run scripts/setup.sh or pass --python")
        }
        return process
    }

    /// Starts a warm engine as a worker would (`train --warm`), gives it no
    /// job (end of file on stdin) and returns how long its imports took, as it reports.
    public func warmUpSeconds() throws -> Double {
        let result = try runTool(["train", "--warm", "--events-fd", "1"])
        for line in result.stdout.split(separator: "\n") {
            if let event = try? EngineEvent.decode(line: String(line)), let seconds = event.payload["warm_seconds"]?.doubleValue { return seconds }
        }
        throw YardError(.unavailable, field: "python", "the warm engine did not start: \(result.stderr.split(separator: "\n").last ?? "exit \(result.status)")")
    }

    /// Runs a short engine command (doctor, demo-data) and returns its stdout.
    public func runTool(_ arguments: [String], extra: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = Pipe()
        let err = Pipe()
        let process = try start(arguments, extra: extra) { process in
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = out
            process.standardError = err
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}
