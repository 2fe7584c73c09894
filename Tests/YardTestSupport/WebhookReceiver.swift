import Foundation
import Hummingbird
import Synchronization

/// A webhook receiver: a real HTTP server on 127.0.0.1 that records each
/// POST /hook and answers as told (2xx, an error status, a redirect, or not
/// until the test opens its gate).
public final class Receiver: Sendable {
    public enum Behavior: Sendable { case ok, status(Int), hold, redirect(String) }

    public struct Delivery: Sendable {
        public var headers: [String: String]
        public var body: Data
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
        public var sequence: String? { headers["x-trainyard-delivery"] }
    }

    public let behavior: Mutex<Behavior>
    public let deliveries = Mutex<[Delivery]>([])
    public let gate = Gate()
    public let port: Int
    private let task: Task<Void, any Error>

    /// Starts on `port` (0: any free one) and returns once it listens.
    public static func start(port: Int = 0, _ behavior: Behavior = .ok) async throws -> Receiver {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let box = Box()
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            guard let receiver = box.receiver.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            return try await receiver.answer(request)
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "receiver"),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next() else { throw CancellationError() }
        let receiver = Receiver(port: bound, behavior: behavior, task: task)
        box.receiver.withLock { $0 = receiver }
        return receiver
    }

    private init(port: Int, behavior: Behavior, task: Task<Void, any Error>) {
        self.port = port
        self.behavior = Mutex(behavior)
        self.task = task
    }

    public var url: String { "http://127.0.0.1:\(port)/hook" }
    public var count: Int { deliveries.withLock { $0.count } }
    public var all: [Delivery] { deliveries.withLock { $0 } }

    public func stop() async {
        gate.open()
        task.cancel()
        _ = try? await task.value
    }

    private func answer(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        deliveries.withLock { $0.append(Delivery(headers: headers, body: Data(body.readableBytesView))) }
        switch behavior.withLock({ $0 }) {
        case .ok: return Response(status: .noContent)
        case .status(let code): return Response(status: .init(code: code))
        case .redirect(let location): return Response(status: .found, headers: [.location: location])
        case .hold:
            await gate.wait(atMost: .seconds(15))
            return Response(status: .ok)
        }
    }

    final class Box: Sendable { let receiver = Mutex<Receiver?>(nil) }
}

/// Held shut until `open()`; waiters then all go on.
public final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    public func wait(atMost limit: Duration) async {
        let timer = Task { [weak self] in
            try? await Task.sleep(for: limit)
            self?.open()
        }
        defer { timer.cancel() }
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
