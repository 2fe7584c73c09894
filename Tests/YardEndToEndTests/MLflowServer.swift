import Foundation
import Synchronization
import Testing
import YardDomain
import YardTestSupport

/// The MLflow side of the end-to-end tests: the shared server that
/// scripts/test.sh starts, servers of a test's own (for outages), and the
/// official Python client to read back what Trainyard wrote.
enum MLflow {
    static var services: String? { ProcessInfo.processInfo.environment["YARD_SERVICES"] }

    /// The shared server's URI (started once per test run by scripts/test.sh).
    static func sharedURI() throws -> String {
        guard let uri = ProcessInfo.processInfo.environment["YARD_TEST_MLFLOW_URI"] else {
            throw HarnessError("no MLflow server: run the tests with scripts/test.sh, which starts one (YARD_TEST_MLFLOW_URI)")
        }
        return uri
    }

    /// Runs Python with the official `mlflow` client against `uri`; the
    /// script prints one JSON value, which is returned.
    static func python(_ uri: String, _ script: String) throws -> JSONValue {
        guard let services else { throw HarnessError("YARD_SERVICES is not set; run scripts/test.sh") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: services + "/bin/python")
        process.arguments = ["-c", "import json, mlflow\nfrom mlflow import MlflowClient\nmlflow.set_tracking_uri(\(uri.debugDescription))\nclient = MlflowClient()\n" + script]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last else {
            throw HarnessError("mlflow client script failed: \(String(decoding: errors, as: UTF8.self).suffix(800))")
        }
        return try JSONDecoder().decode(JSONValue.self, from: Data(line.utf8))
    }

    /// A server of the test's own, in its own process group so it can be
    /// killed whole (an outage) and started again on the same port and store.
    final class Server: Sendable {
        let folder: String
        let port: Int
        private let process = Mutex<Process?>(nil)

        init(folder: String) throws {
            self.folder = folder
            port = try freePort()
        }

        var uri: String { "http://127.0.0.1:\(port)" }

        func start() async throws {
            guard let services = MLflow.services else { throw HarnessError("YARD_SERVICES is not set; run scripts/test.sh") }
            // Foundation starts the child as the leader of a process group of
            // its own, so the server and its workers can be killed together.
            let process = Process()
            process.executableURL = URL(fileURLWithPath: services + "/bin/mlflow")
            process.arguments = ["server", "--host", "127.0.0.1", "--port", "\(port)", "--workers", "1",
                                 "--backend-store-uri", "sqlite:///\(folder)/mlflow.db", "--artifacts-destination", "\(folder)/artifacts",
                                 "--serve-artifacts"]
            let log = FileHandle(forWritingAtPath: try logFile()) ?? .nullDevice
            process.standardOutput = log
            process.standardError = log
            try process.run()
            self.process.withLock { $0 = process }
            try await eventually("mlflow server on \(port)", timeout: .seconds(120), every: .milliseconds(500)) {
                (try? await HTTPText.get(self.uri + "/health")) == "OK"
            }
        }

        /// Kills the whole server (an outage, not a graceful stop).
        func kill() async throws {
            guard let process = process.withLock({ $0 }) else { return }
            Glibc.kill(-process.processIdentifier, SIGKILL)
            try await eventually("mlflow server to stop answering", timeout: .seconds(30)) {
                (try? await HTTPText.get(self.uri + "/health")) == nil
            }
            self.process.withLock { $0 = nil }
        }

        private func logFile() throws -> String {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let path = folder + "/server.log"
            if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
            return path
        }

        deinit {
            if let process = process.withLock({ $0 }) { Glibc.kill(-process.processIdentifier, SIGKILL) }
        }
    }
}


import Glibc
