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
    /// With TLS, the port that speaks it (beside the plain `port`, which the fixture itself uses).
    public let tlsPort: Int?
    public let certificates: TestCertificates?
    private let process = Mutex<Process?>(nil)

    /// Starts one; `password` turns on `requirepass`; `tls` adds a TLS port
    /// that requires a client certificate signed by the same CA (Redis' default).
    public init(password: String? = nil, tls: TestCertificates? = nil) async throws {
        Self.reapOrphans()
        port = try freePort()
        tlsPort = try tls.map { _ in try freePort() }
        certificates = tls
        folder = try TemporaryDirectory("yard-redis")
        self.password = password
        try await start()
    }

    /// Servers left by a test process that died (SIGKILL, a crash) before
    /// its `deinit` ran: their folder is named after its pid. Once per run.
    static func reapOrphans() {
        reaped.withLock { done in
            guard !done else { return }
            done = true
            let temp = NSTemporaryDirectory()
            for name in (try? FileManager.default.contentsOfDirectory(atPath: temp)) ?? [] where name.hasPrefix("yard-redis-") {
                let parts = name.split(separator: "-")
                guard parts.count >= 4, let owner = Int32(parts[2]), owner != getpid(), Glibc.kill(owner, 0) != 0, errno == ESRCH else { continue }
                if let text = try? String(contentsOfFile: temp + name + "/redis.pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                   pid > 1 {
                    Glibc.kill(pid, SIGCONT)
                    Glibc.kill(pid, SIGKILL)
                }
                try? FileManager.default.removeItem(atPath: temp + name)
            }
        }
    }
    private static let reaped = Mutex(false)

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
                         "--protected-mode", "no", "--logfile", folder.file("redis.log"), "--pidfile", folder.file("redis.pid")]
        if let password { arguments += ["--requirepass", password] }
        if let tlsPort, let certificates {
            arguments += ["--tls-port", String(tlsPort), "--tls-cert-file", certificates.serverCertificate,
                          "--tls-key-file", certificates.serverKey, "--tls-ca-cert-file", certificates.ca]
        }
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

    /// A `rediss://` URL for the TLS port, trusting the test CA and
    /// presenting its client certificate.
    public var tlsURL: String? {
        guard let tlsPort, let certificates else { return nil }
        return "rediss://127.0.0.1:\(tlsPort)/0?ca=\(certificates.ca)&cert=\(certificates.clientCertificate)&key=\(certificates.clientKey)"
    }

    /// SIGSTOP: the server keeps its connections but answers nothing.
    public func freeze() { process.withLock { $0.map { _ = Glibc.kill($0.processIdentifier, SIGSTOP) } } }

    public func thaw() { process.withLock { $0.map { _ = Glibc.kill($0.processIdentifier, SIGCONT) } } }
}

/// A test CA with a server certificate for 127.0.0.1 and a client
/// certificate, made by the `openssl` command (P-256 keys), plus a second,
/// unrelated CA for the refusals.
public struct TestCertificates: Sendable {
    public let folder: TemporaryDirectory
    public var ca: String { folder.file("ca.pem") }
    public var otherCA: String { folder.file("other-ca.pem") }
    public var serverCertificate: String { folder.file("server.pem") }
    public var serverKey: String { folder.file("server.key") }
    public var clientCertificate: String { folder.file("client.pem") }
    public var clientKey: String { folder.file("client.key") }

    public init() throws {
        folder = try TemporaryDirectory("yard-certs")
        let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        let script = """
            set -e
            cd '\(folder.path)'
            openssl req -x509 \(key) -keyout ca.key -out ca.pem -days 2 -subj '/CN=yard test CA'
            openssl req -x509 \(key) -keyout other-ca.key -out other-ca.pem -days 2 -subj '/CN=someone else'
            openssl req \(key) -keyout server.key -out server.csr -subj '/CN=127.0.0.1'
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
            openssl req \(key) -keyout client.key -out client.csr -subj '/CN=yard-worker'
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw RedisServer.Missing(description: "making test certificates with openssl failed (scripts/setup.sh --test installs it): \(String(decoding: output, as: UTF8.self).suffix(300))")
        }
    }
}
