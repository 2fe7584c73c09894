import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization
import YardDomain

/// The CLI's view of a Trainyard server over HTTP. Errors come back as the
/// server's one-line message, or as a hint to start the server.
struct APIClient: Sendable {
    let base: String
    let token: String?
    /// `--ca FILE` / `YARD_CA`: the PEM certificates an https server's
    /// certificate must chain to (nil: the system's roots).
    let ca: String?

    init(server: String?, token: String? = ProcessInfo.processInfo.environment["YARD_TOKEN"],
         ca: String? = ProcessInfo.processInfo.environment["YARD_CA"]) {
        let raw = server ?? ProcessInfo.processInfo.environment["YARD_SERVER"] ?? "http://127.0.0.1:8787"
        self.base = raw.hasSuffix("/") ? String(raw.dropLast()) : raw
        self.token = token
        self.ca = ca.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// One client for the process (per CA file). Connecting gives up after a
    /// few seconds, so "no server there" is reported at once rather than
    /// after the request's whole deadline (which for a followed event
    /// stream is days). An https server is verified: its certificate must
    /// chain to `ca` (or the system's roots) and name the host.
    static func http(ca: String?) throws -> HTTPClient {
        try clients.withLock { clients in
            if let client = clients[ca ?? ""] { return client }
            var configuration = HTTPClient.Configuration()
            configuration.timeout.connect = .seconds(3)
            configuration.connectionPool.retryConnectionEstablishment = false
            if let ca {
                let roots: [NIOSSLCertificate]
                do { roots = try NIOSSLCertificate.fromPEMFile(ca) } catch {
                    throw YardError.invalid("--ca", "cannot read PEM certificates from \(ca); give the CA certificate that signed the server's")
                }
                guard !roots.isEmpty else { throw YardError.invalid("--ca", "\(ca) holds no PEM certificate") }
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.trustRoots = .certificates(roots)
                configuration.tlsConfiguration = tls
            }
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[ca ?? ""] = client
            return client
        }
    }
    private static let clients = Mutex<[String: HTTPClient]>([:])

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    func request(_ method: HTTPMethod, _ path: String, body: Data? = nil, contentType: String = "application/json") -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return request
    }

    /// Sends a request and returns the body; a 4xx/5xx becomes a `YardError`.
    func send(_ method: HTTPMethod, _ path: String, body: Data? = nil, headers: [String: String] = [:],
              timeout: TimeAmount = .seconds(60)) async throws -> Data {
        var request = request(method, path, body: body)
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        let response = try await execute(request, timeout: timeout)
        let buffer = try await response.body.collect(upTo: 64 << 20)
        let data = Data(buffer: buffer)
        try Self.check(response.status, data)
        return data
    }

    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try Self.decoder.decode(type, from: try await send(.GET, path))
    }

    func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        let http = try Self.http(ca: ca)
        do {
            return try await http.execute(request, timeout: timeout)
        } catch {
            if Self.isUntrusted(error) {
                throw YardError(.unavailable, field: "--ca",
                                "the server at \(base) is not trusted (\(Self.describe(error))): give the CA that signed its certificate with --ca FILE or YARD_CA")
            }
            throw YardError(.unavailable, field: "--server",
                            "cannot reach the Trainyard server at \(base) (\(Self.describe(error))); start it with `yard up` or set --server / YARD_SERVER")
        }
    }

    static func check(_ status: HTTPResponseStatus, _ data: Data) throws {
        guard status.code >= 400 else { return }
        if let object = try? JSONDecoder().decode([String: String].self, from: data), let message = object["message"] {
            throw YardError(status.code == 404 ? .notFound : .invalidInput, field: object["field"], message)
        }
        throw YardError(.unavailable, "the server answered \(status.code) \(status.reasonPhrase)")
    }

    /// A TLS handshake the client refused: the server's certificate does not chain to a trusted root, or names another host.
    static func isUntrusted(_ error: any Error) -> Bool {
        if let error = error as? NIOSSLError, case .handshakeFailed = error { return true }
        let text = "\(error)"
        return text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed") || text.contains("unableToValidateCertificate")
    }

    static func describe(_ error: any Error) -> String {
        if isUntrusted(error) {
            let text = "\(error)"
            if text.contains("unableToValidateCertificate") || text.contains("hostname") { return "its certificate does not name this host" }
            return "its certificate does not chain to a trusted CA"
        }
        if let error = error as? NIOSSLError, case .uncleanShutdown = error { return "the TLS connection was cut" }
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("Timeout") || text.contains("timeout") { return "timed out" }
        return text.split(separator: "\n").first.map(String.init) ?? text
    }
}
