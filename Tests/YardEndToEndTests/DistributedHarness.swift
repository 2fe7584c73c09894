import Foundation
import Testing
import YardDomain
import YardTestSupport

/// A `yard` process started by a test, with its own log file.
struct YardProcess {
    let process: Process
    let log: String

    var pid: Int32 { process.processIdentifier }
    var text: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// SIGKILL, also after a SIGSTOP; waits until it is gone.
    func kill9() async throws {
        kill(process.processIdentifier, SIGCONT)
        kill(process.processIdentifier, SIGKILL)
        try await eventually("yard (\(log)) to exit", timeout: .seconds(30)) { !process.isRunning }
    }
}

extension YardHarness {
    /// Starts `yard ARGUMENTS` with its output in a log file and waits until
    /// the log shows `ready` (the process dying first fails with its log).
    func spawn(_ arguments: [String], environment: [String: String] = [:], log name: String, ready: String,
               timeout: Duration = .seconds(90)) async throws -> YardProcess {
        let (process, log) = try launch(arguments, environment: environment, log: name)
        let started = YardProcess(process: process, log: log)
        try await eventually("\(name) to start (log: \(log))", timeout: timeout, every: .milliseconds(100)) {
            let text = started.text
            guard process.isRunning || text.contains(ready) else { throw HarnessError("\(name) exited: \(text)") }
            return text.contains(ready)
        }
        return started
    }

    /// `yard server --redis URL` on `port` (0: a free one); `data` is its own folder.
    func server(redis: String, port: Int = 0, data: String, extra: [String] = []) async throws -> RunningYard {
        try await serving(["server", "--redis", redis, "--port", "\(port)", "--data-dir", data, "--python", python, "--stop-grace", "60"] + extra,
                          log: "server")
    }

    /// Starts `yard up` or `yard server` and waits until it serves, on the port its log names.
    func serving(_ arguments: [String], environment: [String: String] = [:], log name: String) async throws -> RunningYard {
        let started = try await spawn(arguments, environment: environment, log: name, ready: "serving http://127.0.0.1:", timeout: .seconds(60))
        let text = started.text
        guard let range = text.range(of: "serving http://127.0.0.1:"), let port = Int(text[range.upperBound...].prefix { $0.isNumber }) else {
            throw HarnessError("no port in the \(name) log: \(text)")
        }
        return RunningYard(process: started.process, port: port, log: started.log)
    }

    /// `yard worker --redis URL` with a data dir of its own and the server's key.
    func worker(redis: String, name: String, lease: Int, key: String, extra: [String] = []) async throws -> YardProcess {
        try await spawn(["worker", "--redis", redis, "--data-dir", dir.file(name), "--lease", "\(lease)", "--python", python] + extra,
                        environment: ["YARD_SECRET_KEY": key], log: name, ready: "trainyard worker ")
    }

    /// The key a server made in its data dir (what an operator copies to workers).
    func secretKey(of data: String) throws -> String {
        try String(contentsOfFile: data + "/secret.key", encoding: .utf8).split(separator: "\n").first.map(String.init) ?? ""
    }
}

extension RunningYard {
    /// The epochs recorded for a job, in order (a repeat would show twice).
    func recordedEpochs(_ id: String) async throws -> [Int] {
        (try await job(id)["epoch_metrics"]?.arrayValue ?? []).compactMap { $0["epoch"]?.intValue }
    }

    /// The `state` events of a job, as `state` values in order.
    func stateHistory(_ id: String) async throws -> [String] {
        try await eventPayloads(self, id, type: "state").compactMap { $0["state"]?.stringValue }
    }
}
