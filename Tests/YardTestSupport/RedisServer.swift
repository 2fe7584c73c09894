import Foundation
import Glibc
import Synchronization
import YardRedis

/// A real `redis-server` of the test's own on 127.0.0.1: a free port, a
/// folder for its append-only file, and control over its process (stop and
/// start again on the same port and data, kill, freeze with SIGSTOP).
public final class RedisServer: Sendable {
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    public let port: Int
    public let folder: TemporaryDirectory
    public let password: String?
    private let process = Mutex<Process?>(nil)

    /// Starts one; `password` turns on `requirepass`.
    public init(password: String? = nil) async throws {
        port = try freePort()
        folder = try TemporaryDirectory("yard-redis")
        self.password = password
        try await start()
    }

    deinit {
        if let process = process.withLock({ $0 }), process.isRunning {
            Glibc.kill(process.processIdentifier, SIGCONT)
            Glibc.kill(process.processIdentifier, SIGKILL)
        }
        folder.remove()
    }

    public var url: String {
        let login = password.map { ":\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)@" } ?? ""
        return "redis://\(login)127.0.0.1:\(port)/0"
    }

    public func configuration(database: Int = 0) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configuration.database = database
        return configuration
    }

    /// The `redis-server` binary: YARD_TEST_REDIS_SERVER, else on PATH.
    public static func binary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["YARD_TEST_REDIS_SERVER"] { return path }
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = "\(folder)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw Missing(description: "redis-server is not installed: run scripts/setup.sh --test (it installs Debian's redis-server)")
    }

    /// Starts the server (again) on the same port and folder, with the
    /// append-only file on, and waits until it answers PING.
    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.binary())
        var arguments = ["--port", String(port), "--bind", "127.0.0.1", "--dir", folder.path,
                         "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                         "--protected-mode", "no", "--logfile", folder.file("redis.log")]
        if let password { arguments += ["--requirepass", password] }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process.withLock { $0 = process }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let connection = try? await RedisConnection.connect(RedisConfiguration(port: port, password: password)) {
                let reply = try? await connection.send(["PING"])
                connection.close()
                if reply == .simpleString("PONG") { return }
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let log = (try? String(contentsOfFile: folder.file("redis.log"), encoding: .utf8)) ?? ""
        throw Missing(description: "redis-server on port \(port) did not start: \(log.suffix(400))")
    }

    /// SHUTDOWN: Redis writes its append-only file and exits. (Not SIGTERM:
    /// a child of the test process inherits a mask that blocks it.)
    public func stop() async throws {
        if let connection = try? await RedisConnection.connect(configuration()) {
            _ = try? await connection.send(["SHUTDOWN"])
            connection.close()
        }
        if let process = process.withLock({ $0 }) {
            try? await eventually("redis-server \(port) to shut down", timeout: .seconds(5)) { !process.isRunning }
        }
        try await end(SIGKILL)
    }

    /// SIGKILL, no goodbye.
    public func kill9() async throws { try await end(SIGKILL) }

    private func end(_ signal: Int32) async throws {
        guard let process = process.withLock({ $0 }) else { return }
        Glibc.kill(process.processIdentifier, SIGCONT)
        Glibc.kill(process.processIdentifier, signal)
        try await eventually("redis-server \(port) to exit", timeout: .seconds(10)) { !process.isRunning }
    }

    /// SIGSTOP: the server keeps its connections but answers nothing.
    public func freeze() { process.withLock { $0.map { _ = Glibc.kill($0.processIdentifier, SIGSTOP) } } }

    public func thaw() { process.withLock { $0.map { _ = Glibc.kill($0.processIdentifier, SIGCONT) } } }
}
