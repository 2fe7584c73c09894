import Foundation
import Logging
import YardDomain
import YardEngine

/// Dynamic batching: requests with the same options wait up to `maxWait`
/// for others and go to one predictor together, at most `maxImages` images
/// (pays on a GPU, where a batch of 8 costs little more than one image).
public struct Batching: Sendable, Equatable {
    public var maxImages: Int
    public var maxWait: Duration

    public init(maxImages: Int, maxWait: Duration) {
        self.maxImages = maxImages
        self.maxWait = maxWait
    }
}

/// The predictors of one model version: `size` engine processes, each with
/// the model loaded once and `threads` torch threads, so the pool uses every
/// core. Requests wait in order for a free predictor (or, with `batching`,
/// are gathered into batches first); a predictor that dies is started again
/// and the request it held is retried once on another.
actor PredictorPool {
    let weights: String
    let task: String?
    let engine: EngineEnvironment
    let size: Int
    let threads: Int
    let requestTimeout: Duration
    let loadTimeout: Duration
    let batching: Batching?
    let logger: Logger
    private var predictors: [Predictor] = []
    private var idle: [Predictor] = []
    private var waiters: [CheckedContinuation<Predictor, any Error>] = []
    private(set) var ready: Predictor.Ready?
    private(set) var inFlight = 0
    private(set) var restarts = 0
    private var closed = false
    /// Predictors being started in place of dead ones.
    private var starting = 0
    /// Requests waiting to be batched, oldest first.
    private var pending: [Pending] = []
    private var timerArmed = false
    /// Engine calls by images per call.
    private(set) var batchSizes: [Int: Int] = [:]

    private struct Pending {
        var images: [Data]
        var options: PredictOptions
        var arrived: ContinuousClock.Instant
        var continuation: CheckedContinuation<JSONValue, any Error>
    }

    init(weights: String, task: String? = nil, engine: EngineEnvironment, size: Int, threads: Int, requestTimeout: Duration = .seconds(60),
         loadTimeout: Duration = .seconds(180), batching: Batching? = nil, logger: Logger) {
        self.weights = weights
        self.task = task
        self.engine = engine
        self.size = max(1, size)
        self.threads = max(1, threads)
        self.requestTimeout = requestTimeout
        self.loadTimeout = loadTimeout
        self.batching = batching.flatMap { $0.maxImages > 1 ? $0 : nil }
        self.logger = logger
    }

    /// Starts every predictor (in parallel); fails if the model cannot be
    /// loaded, with every one that did start stopped again.
    func load() async throws -> Predictor.Ready {
        let results = await withTaskGroup(of: Result<(Predictor, Predictor.Ready), any Error>.self) { group in
            for _ in 0..<size {
                group.addTask { [weights, task, engine, threads, loadTimeout] in
                    do { return .success(try await Predictor.start(engine: engine, weights: weights, task: task, threads: threads, loadTimeout: loadTimeout)) }
                    catch { return .failure(error) }
                }
            }
            var all: [Result<(Predictor, Predictor.Ready), any Error>] = []
            for await one in group { all.append(one) }
            return all
        }
        let started = results.compactMap { try? $0.get() }
        if let failure = results.first(where: { if case .failure = $0 { true } else { false } }), case .failure(let error) = failure {
            for (predictor, _) in started { predictor.stop(kill: true) }
            throw error
        }
        predictors = started.map(\.0)
        idle = predictors
        ready = started.first?.1
        return started[0].1
    }

    /// Whether every predictor is gone and none is being started (the
    /// version must be loaded again).
    var isDead: Bool { !closed && predictors.isEmpty && starting == 0 }

    /// Runs one request on the next free predictor (with batching, in a
    /// batch with others that came within the wait).
    func predict(_ images: [Data], options: PredictOptions) async throws -> JSONValue {
        inFlight += 1
        defer { inFlight -= 1 }
        guard let batching, images.count < batching.maxImages else { return try await predictAlone(images, options: options) }
        try ensureServing()
        return try await withCheckedThrowingContinuation { continuation in
            pending.append(Pending(images: images, options: options, arrived: .now, continuation: continuation))
            dispatch()
        }
    }

    private func predictAlone(_ images: [Data], options: PredictOptions) async throws -> JSONValue {
        batchSizes[images.count, default: 0] += 1
        var attempt = 0
        while true {
            attempt += 1
            let predictor = try await acquire()
            do {
                let answer = try await predictor.predict(images, options: options, timeout: requestTimeout)
                release(predictor)
                return answer
            } catch let died as PredictorDied {
                logger.warning("predictor \(predictor.pid) for \(weights) ended: \(died.reason); starting another")
                await replace(predictor)
                try Task.checkCancellation()  // given up: not sent again
                if attempt >= 2 { throw YardError(.unavailable, field: "model", "the model's predictor failed twice on this request: \(died.reason)") }
            } catch {
                // Cancelled: the answer was read (the wait outlives the
                // cancellation), so the predictor is free again.
                if predictor.isAlive { release(predictor) } else { await replace(predictor) }
                throw error
            }
        }
    }

    /// Resident memory of all its processes.
    var residentBytes: Int64 { predictors.reduce(0) { $0 + $1.residentBytes } }
    var processIDs: [Int32] { predictors.map(\.pid) }

    func close() {
        closed = true
        for request in pending { request.continuation.resume(throwing: Self.unloaded) }
        pending = []
        for predictor in predictors { predictor.stop() }
        predictors = []
        idle = []
        for waiter in waiters { waiter.resume(throwing: Self.unloaded) }
        waiters = []
    }

    private static var unloaded: YardError { YardError(.unavailable, field: "model", "the model was unloaded") }

    /// Refuses a request when no predictor runs or is starting.
    private func ensureServing() throws(YardError) {
        if closed { throw Self.unloaded }
        if isDead { throw YardError(.unavailable, field: "model", "the model has no running predictor") }
    }

    private func acquire() async throws -> Predictor {
        try ensureServing()
        if let predictor = takeIdle() { return predictor }
        return try await withCheckedThrowingContinuation { waiters.append($0) }
    }

    private func release(_ predictor: Predictor) {
        guard !closed, predictors.contains(where: { $0 === predictor }) else { return }
        if waiters.isEmpty {
            idle.append(predictor)
            dispatch()
        } else {
            waiters.removeFirst().resume(returning: predictor)
        }
    }

    /// Sends the waiting requests out in batches while predictors are free:
    /// the oldest request with every later one that has its options, up to
    /// `maxImages`; a batch that is not full waits until its oldest request
    /// has waited `maxWait`.
    private func dispatch() {
        guard let batching else { return }
        while let head = pending.first {
            var chosen: [Int] = [], count = 0
            for (index, request) in pending.enumerated() where request.options == head.options && count + request.images.count <= batching.maxImages {
                chosen.append(index)
                count += request.images.count
            }
            let waited = ContinuousClock.now - head.arrived
            if count < batching.maxImages && waited < batching.maxWait {
                arm(after: batching.maxWait - waited)
                return
            }
            guard let predictor = takeIdle() else { return }  // a release dispatches again
            let batch = chosen.map { pending[$0] }
            for index in chosen.reversed() { pending.remove(at: index) }
            Task { await self.run(batch, on: predictor) }
        }
    }

    /// Sends each request of a batch on its own.
    private func alone(_ batch: [Pending]) {
        for request in batch {
            Task {
                do { request.continuation.resume(returning: try await self.predictAlone(request.images, options: request.options)) }
                catch { request.continuation.resume(throwing: error) }
            }
        }
    }

    private func arm(after delay: Duration) {
        guard !timerArmed else { return }
        timerArmed = true
        Task {
            try? await Task.sleep(for: delay)
            self.timerFired()
        }
    }

    private func timerFired() {
        timerArmed = false
        dispatch()
    }

    /// A live idle predictor; one that died while idle is dropped and its
    /// place filled in the background.
    private func takeIdle() -> Predictor? {
        while let predictor = idle.popLast() {
            if predictor.isAlive { return predictor }
            logger.warning("predictor \(predictor.pid) for \(weights) ended while idle; starting another")
            Task { await self.replace(predictor) }
        }
        return nil
    }

    /// One engine call for a batch; each request gets its own images'
    /// results. A batch the engine refuses (an image it cannot read) is
    /// tried again request by request, so only the bad one fails.
    private func run(_ batch: [Pending], on first: Predictor) async {
        let images = batch.flatMap(\.images)
        batchSizes[images.count, default: 0] += 1
        var predictor = first
        var attempt = 0
        while true {
            attempt += 1
            do {
                let answer = try await predictor.predict(images, options: batch[0].options, timeout: requestTimeout)
                release(predictor)
                let results = answer["results"]?.arrayValue
                if batch.count > 1, answer["error"] != nil || results?.count != images.count {
                    alone(batch)
                    return
                }
                guard let results else {
                    batch[0].continuation.resume(returning: answer)
                    return
                }
                var offset = 0
                for request in batch {
                    var own = answer.objectValue ?? [:]
                    own["results"] = .array(Array(results[offset..<offset + request.images.count]))
                    own["batch"] = .int(images.count)
                    offset += request.images.count
                    request.continuation.resume(returning: .object(own))
                }
                return
            } catch let died as PredictorDied {
                logger.warning("predictor \(predictor.pid) for \(weights) ended: \(died.reason); starting another")
                await replace(predictor)
                // One request's image may be what kills or hangs it: each
                // goes alone (with its own retry), so only that one fails.
                if batch.count > 1 {
                    alone(batch)
                    return
                }
                if attempt >= 2 {
                    let error = YardError(.unavailable, field: "model", "the model's predictor failed twice on this request: \(died.reason)")
                    for request in batch { request.continuation.resume(throwing: error) }
                    return
                }
                do { predictor = try await acquire() } catch {
                    for request in batch { request.continuation.resume(throwing: error) }
                    return
                }
            } catch {
                if predictor.isAlive { release(predictor) } else { await replace(predictor) }
                for request in batch { request.continuation.resume(throwing: error) }
                return
            }
        }
    }

    /// A dead predictor's place goes to a new one (started here, in order).
    private func replace(_ dead: Predictor) async {
        dead.stop(kill: true)
        guard predictors.contains(where: { $0 === dead }) else { return }  // replaced already
        predictors.removeAll { $0 === dead }
        guard !closed else { return }
        restarts += 1
        starting += 1
        defer { starting -= 1 }
        do {
            // Started in a task of its own: the request whose predictor died
            // may have been given up, and a cancelled wait would fail the load.
            let (engine, weights, task, threads, loadTimeout) = (self.engine, self.weights, self.task, self.threads, self.loadTimeout)
            let (fresh, _) = try await Task {
                try await Predictor.start(engine: engine, weights: weights, task: task, threads: threads, loadTimeout: loadTimeout)
            }.value
            if closed { fresh.stop(); return }
            predictors.append(fresh)
            release(fresh)
        } catch {
            logger.error("cannot start a predictor for \(weights): \(error)")
            if predictors.isEmpty && starting == 1 {
                let failure = YardError(.unavailable, field: "model", "the model's predictors cannot start: \(error)")
                for waiter in waiters { waiter.resume(throwing: failure) }
                waiters = []
                for request in pending { request.continuation.resume(throwing: failure) }
                pending = []
            }
        }
    }
}
