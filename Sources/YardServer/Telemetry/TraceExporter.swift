import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import YardDomain

/// Sends finished spans to an OTLP/HTTP collector as JSON, in batches.
/// `record` never waits: spans go into a bounded buffer (the oldest are
/// dropped past `capacity`, and counted), and `run` sends the buffer every
/// `interval`, each export with its own deadline, so a collector that is
/// down or hangs costs dropped spans, never a slower request or training.
/// At shutdown what is buffered is sent once more, within the deadline.
public final class TraceExporter: Service, Sendable {
    public let settings: TraceSettings
    let logger: Logger
    private let state = Mutex(Buffer())
    static let batch = 512

    struct Buffer {
        var spans: [TraceSpan] = []
        var dropped = 0
        var exported = 0
        var lastWarning: ContinuousClock.Instant?
    }

    public init(settings: TraceSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// A client lives only as long as the loop that uses it, so an exporter
    /// that never runs (tracing configured, server never started) holds none.
    private func makeClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                     timeout: .init(connect: .init(settings.timeout), read: .init(settings.timeout)))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Spans sent, and spans given up (buffer full, export failed or timed out).
    public struct Counts: Sendable, Equatable {
        public var exported = 0
        public var dropped = 0

        public init(exported: Int = 0, dropped: Int = 0) {
            self.exported = exported
            self.dropped = dropped
        }
    }

    /// What this exporter sent and gave up so far (`/metrics` shows them).
    public var counts: Counts { state.withLock { Counts(exported: $0.exported, dropped: $0.dropped) } }

    public func record(_ spans: [TraceSpan]) {
        guard !spans.isEmpty else { return }
        state.withLock { buffer in
            buffer.spans.append(contentsOf: spans)
            let over = buffer.spans.count - settings.capacity
            if over > 0 {
                buffer.spans.removeFirst(over)
                buffer.dropped += over
            }
        }
    }

    public func run() async throws {
        let client = makeClient()
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: self.settings.interval)
                await self.flush(using: client)
            }
        }
        await flush(using: client)
        try? await client.shutdown()
    }

    /// Sends what is buffered now, on a client of its own.
    public func flush() async {
        let client = makeClient()
        await flush(using: client)
        try? await client.shutdown()
    }

    /// Sends what is buffered, a batch at a time.
    func flush(using client: HTTPClient) async {
        while true {
            let spans: [TraceSpan] = state.withLock { buffer in
                let taken = Array(buffer.spans.prefix(Self.batch))
                buffer.spans.removeFirst(taken.count)
                return taken
            }
            guard !spans.isEmpty else { return }
            let problem = await send(spans, using: client)
            state.withLock { buffer in
                if problem == nil { buffer.exported += spans.count } else { buffer.dropped += spans.count }
            }
            if let problem {
                warn(problem)
                return  // the rest waits for the next round, the collector may be back
            }
        }
    }

    /// The OTLP `ExportTraceServiceRequest` for these spans.
    func body(_ spans: [TraceSpan]) -> JSONValue {
        let resource: JSONValue = ["attributes": [
            ["key": "service.name", "value": ["stringValue": .string(settings.serviceName)]],
            ["key": "service.version", "value": ["stringValue": .string(Trainyard.version)]],
            ["key": "host.name", "value": ["stringValue": .string(ProcessInfo.processInfo.hostName)]],
        ]]
        return ["resourceSpans": [["resource": resource, "scopeSpans": [[
            "scope": ["name": "trainyard", "version": .string(Trainyard.version)],
            "spans": .array(spans.map(\.otlp)),
        ]]]]]
    }

    /// nil when the collector took them; else why not, naming it by scheme and host only.
    private func send(_ spans: [TraceSpan], using client: HTTPClient) async -> String? {
        var request = HTTPClientRequest(url: settings.endpoint.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Trainyard/\(Trainyard.version)")
        for (name, value) in settings.headers { request.headers.add(name: name, value: value) }
        guard let data = try? JSONResponse.encoder.encode(body(spans)) else { return "cannot encode spans" }
        request.body = .bytes(ByteBuffer(bytes: data))
        let prepared = request, timeout = settings.timeout
        let target = "\(settings.endpoint.scheme ?? "http")://\(settings.endpoint.host ?? "?")"
        do {
            let status = try await withDeadline(timeout) {
                let response = try await client.execute(prepared, timeout: .init(timeout))
                _ = try? await response.body.collect(upTo: 64 << 10)
                return Int(response.status.code)
            }
            return (200..<300).contains(status) ? nil : "the trace collector at \(target) answered \(status)"
        } catch is DeadlineExceeded {
            return "the trace collector at \(target) did not answer within \(timeout)"
        } catch {
            return "the trace collector at \(target) cannot be reached"
        }
    }

    /// At most one warning a minute, whatever the rate of failures.
    private func warn(_ problem: String) {
        let now = ContinuousClock.now
        let due = state.withLock { buffer in
            if let last = buffer.lastWarning, now - last < .seconds(60) { return false }
            buffer.lastWarning = now
            return true
        }
        if due { logger.warning("traces: \(problem); spans are dropped until it answers") }
    }
}
