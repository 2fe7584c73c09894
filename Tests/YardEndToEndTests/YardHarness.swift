import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import YardDomain
import YardEngine
import YardTestSupport

/// Runs the real `yard` binary and the real engine, as a user would.
struct YardHarness {
    let dir: TemporaryDirectory
    let bin: String
    let python: String

    init(_ name: String) throws {
        dir = try TemporaryDirectory("yard-e2e-\(name)")
        let env = ProcessInfo.processInfo.environment
        let buildDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        bin = env["YARD_BIN"] ?? buildDir.appendingPathComponent("yard").path
        let engineDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("engine").path
        guard let python = env["YARD_PYTHON"] ?? EngineEnvironment.venvPython(engineDirectory: engineDir) else {
            throw HarnessError("no engine Python: run scripts/setup.sh (or scripts/test.sh), or set YARD_PYTHON")
        }
        self.python = python
        guard FileManager.default.isExecutableFile(atPath: bin) else { throw HarnessError("no yard binary at \(bin); set YARD_BIN") }
    }

    var data: String { dir.file("data") }

    /// Runs a `yard` command to completion.
    @discardableResult
    func yard(_ arguments: [String], server: Int? = nil) throws -> (status: Int32, output: String) {
        let (process, out) = try launch(arguments + (server.map { ["--server", "http://127.0.0.1:\($0)"] } ?? []), log: "cmd")
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    /// Starts `yard ARGUMENTS` (the engine's Python set, `environment`
    /// added) with stdout and stderr in a log file of its own; the one place
    /// the tests start the binary.
    func launch(_ arguments: [String], environment: [String: String] = [:], log name: String) throws -> (Process, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bin)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["YARD_PYTHON"] = python
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let log = dir.file("\(name)-\(UUID().uuidString.prefix(6)).log")
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try handle.close()  // the child has its own copy
        return (process, log)
    }

    /// Runs a script with the engine's Python (Optuna, Ultralytics); its
    /// last line of output is JSON, returned.
    func python(_ script: String) throws -> JSONValue {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last else {
            throw HarnessError("python script failed: \(String(decoding: errors, as: UTF8.self).suffix(800))")
        }
        return try JSONDecoder().decode(JSONValue.self, from: Data(line.utf8))
    }

    /// The version of a package installed in the engine's Python.
    func installedVersion(_ package: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", "import importlib.metadata, sys; print(importlib.metadata.version(sys.argv[1]))", package]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let version = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationStatus == 0, !version.isEmpty else { throw HarnessError("\(python): no \(package) installed") }
        return version
    }

    func demoDataset(kind: String = "detect", train: Int = 32, val: Int = 8) throws -> String {
        let folder = dir.file("demo-\(kind)")
        let result = try yard(["datasets", "demo", folder, "--kind", kind, "--train", "\(train)", "--val", "\(val)"])
        guard result.status == 0 else { throw HarnessError("demo dataset: \(result.output)") }
        return kind == "detect" ? folder + "/data.yaml" : folder
    }

    /// Starts `yard up` on a free port and waits until it serves.
    func up() async throws -> RunningYard {
        try await serving(["up", "--port", "0", "--data-dir", data, "--python", python, "--stop-grace", "60"], log: "up")
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A `yard up` process and a client for its API.
struct RunningYard {
    let process: Process
    let port: Int
    let log: String

    var base: String { "http://127.0.0.1:\(port)" }

    func submit(_ yaml: String) async throws -> String {
        var request = HTTPClientRequest(url: base + "/api/jobs")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: yaml))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .created, let id = try JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))["id"]?.stringValue else {
            throw HarnessError("submit failed: \(response.status) \(String(buffer: body))")
        }
        return id
    }

    func get(_ path: String) async throws -> JSONValue {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: base + path), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 64 << 20)
        return try JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
    }

    func job(_ id: String) async throws -> JSONValue { try await get("/api/jobs/\(id)") }

    /// Waits until the job satisfies `condition`; a job that fails meanwhile
    /// ends the wait at once unless `failureExpected`.
    func waitFor(_ id: String, timeout: Duration = .seconds(240), failureExpected: Bool = false, _ what: String,
                 _ condition: @escaping (JSONValue) -> Bool) async throws {
        try await eventually("\(id): \(what)", timeout: timeout, every: .milliseconds(200)) {
            let job = try await self.job(id)
            if job["state"] == "failed", !failureExpected {
                throw HarnessError("\(id) failed: \(job["message"]?.stringValue ?? "")")
            }
            return condition(job)
        }
    }

    func waitForState(_ id: String, _ state: String, timeout: Duration = .seconds(240)) async throws {
        try await waitFor(id, timeout: timeout, "state \(state)") { $0["state"]?.stringValue == state }
    }

    /// Sends a signal and waits for the process to end.
    func signal(_ sig: Int32) async throws {
        kill(process.processIdentifier, sig)
        try await eventually("yard up to exit", timeout: .seconds(120)) { !process.isRunning }
    }
}
