import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import YardDomain

/// The CLI's view of a Trainyard server over HTTP. Errors come back as the
/// server's one-line message, or as a hint to start the server.
struct APIClient: Sendable {
    let base: String
    let token: String?

    init(server: String?, token: String? = ProcessInfo.processInfo.environment["YARD_TOKEN"]) {
        let raw = server ?? ProcessInfo.processInfo.environment["YARD_SERVER"] ?? "http://127.0.0.1:8787"
        self.base = raw.hasSuffix("/") ? String(raw.dropLast()) : raw
        self.token = token
    }

    /// One client for the process. Connecting gives up after a few seconds, so
    /// "no server there" is reported at once rather than after the request's
    /// whole deadline (which for a followed event stream is days).
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(3)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

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
        do {
            return try await Self.http.execute(request, timeout: timeout)
        } catch {
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

    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("Timeout") || text.contains("timeout") { return "timed out" }
        return text.split(separator: "\n").first.map(String.init) ?? text
    }
}
