import Foundation
import Glibc
import YardDomain

/// Reads GPU stats from `nvidia-smi`'s CSV query output. No GPU, no
/// nvidia-smi, a driver that fails or a call that hangs (a GPU that fell
/// off the bus) each give an error with the reason, never a stuck worker.
public struct NvidiaSMI: Sendable {
    /// The query, in the order `parse` reads the columns.
    public static let fields = ["index", "uuid", "name", "memory.total", "memory.used", "utilization.gpu", "temperature.gpu"]
    public static var arguments: [String] { ["--query-gpu=" + fields.joined(separator: ","), "--format=csv,noheader,nounits"] }

    public struct Failure: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Folders searched for `nvidia-smi` (the worker's PATH).
    public var searchPath: String
    /// How long one call may take before it is killed.
    public var timeout: Duration

    public init(searchPath: String = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", timeout: Duration = .seconds(5)) {
        self.searchPath = searchPath
        self.timeout = timeout
    }

    /// The `nvidia-smi` executable on the search path, if any.
    public var executable: String? {
        searchPath.split(separator: ":").map { "\($0)/nvidia-smi" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Parses `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`.
    public static func parse(_ csv: String) throws(Failure) -> [GPUStats] {
        var gpus: [GPUStats] = []
        for raw in csv.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let columns = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard columns.count == fields.count, let index = Int(columns[0]), !columns[2].isEmpty else {
                throw Failure(description: "nvidia-smi printed a line that is not \(fields.count) GPU fields: \(line.prefix(200))")
            }
            func number(_ text: String) -> Int? { Double(text).flatMap { Int(checked: $0.rounded()) } }
            gpus.append(GPUStats(index: index, uuid: columns[1].hasPrefix("[") ? nil : columns[1], name: columns[2],
                                 memoryTotalMiB: number(columns[3]), memoryUsedMiB: number(columns[4]),
                                 utilizationPercent: number(columns[5]), temperatureC: number(columns[6])))
        }
        return gpus
    }

    /// Runs nvidia-smi once; nil when it is not installed (no GPU here).
    public func sample() async throws(Failure) -> [GPUStats]? {
        guard let executable else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Self.arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw Failure(description: "cannot run \(executable): \(error.localizedDescription)") }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                // Foundation makes the child a process-group leader: the group
                // goes, so nothing it started keeps the pipes open.
                kill(-process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw Failure(description: "nvidia-smi did not answer within \(timeout); killed it (a GPU may have fallen off the bus)")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            let reason = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) + text
            let line = reason.split(whereSeparator: \.isNewline).first.map(String.init) ?? "no output"
            throw Failure(description: "nvidia-smi failed (exit \(process.terminationStatus)): \(line.prefix(300))")
        }
        return try Self.parse(text)
    }
}
