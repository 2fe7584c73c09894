import Foundation
import Glibc
import Synchronization
import YardDomain
import YardEngine

/// `python -m trainyard_engine export`: one run of the engine that writes a
/// version's weights in another format. Its log goes to a file (a pipe
/// nobody reads would stall it), its answer is the last line on stdout, and
/// a run past the timeout is killed.
/// The export processes running now, so a shutdown can end them.
final class RunningExports: Sendable {
    private let pids = Mutex(Set<Int32>())

    func add(_ pid: Int32) { pids.withLock { _ = $0.insert(pid) } }
    func remove(_ pid: Int32) { pids.withLock { _ = $0.remove(pid) } }
    func killAll() { for pid in pids.withLock({ $0 }) { kill(pid, SIGKILL) } }
}

enum ModelExport {
    static func run(engine: EngineEnvironment, weights: String, format: String, out: String, timeout: Duration,
                    running: RunningExports) async throws -> JSONValue {
        let log = out + ".log"
        defer { unlink(log) }
        guard FileManager.default.createFile(atPath: log, contents: nil), let logHandle = FileHandle(forWritingAtPath: log) else {
            throw YardError(.unavailable, field: "format", "cannot write the export's log beside \(out)")
        }
        let stdout = Pipe()
        let process: Process
        do {
            process = try engine.startEngine(["export", "--model", weights, "--format", format, "--out", out]) { process in
                process.standardInput = FileHandle.nullDevice
                process.standardOutput = stdout
                process.standardError = logHandle
            }
        } catch {
            try? logHandle.close()
            throw error
        }
        try? logHandle.close()
        let pid = process.processIdentifier
        running.add(pid)
        defer { running.remove(pid) }
        let finished = Mutex(false)
        let timedOut = Mutex(false)
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            if !finished.withLock({ $0 }) && process.isRunning {
                timedOut.withLock { $0 = true }
                kill(pid, SIGKILL)
            }
        }
        let reader = stdout.fileHandleForReading
        let output = try await offloadThrowing {
            let data = reader.readDataToEndOfFile()
            process.waitUntilExit()
            return data
        }
        finished.withLock { $0 = true }
        watchdog.cancel()
        if timedOut.withLock({ $0 }) {
            throw YardError(.unavailable, field: "format", "the \(format) export did not finish within \(Int(timeout.timeInterval)) s")
        }
        let lastLine = String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard process.terminationStatus == 0, let report = try? JSONDecoder().decode(JSONValue.self, from: Data(lastLine.utf8)),
              FileManager.default.fileExists(atPath: out) else {
            let why = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n")
                .last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init) ?? "exit \(process.terminationStatus)"
            throw YardError(.unavailable, field: "format", "the \(format) export failed: \(Redaction.redactText(String(why.prefix(300))))")
        }
        return report
    }
}
