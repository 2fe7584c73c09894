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
/// and the request it held is retried once on another. A predictor killed
/// while it loads (a signal the pool did not send) is started again at once,
/// up to `crashRetries` times in a row: that is not a model that cannot load.
/// One whose memory stays over `memoryShare` after a request is replaced.
actor PredictorPool {
    let weights: String
    let task: String?
    let engine: EngineEnvironment
    let size: Int
    let threads: Int
    let requestTimeout: Duration
    let loadTimeout: Duration
    let batching: Batching?
    /// Resident memory a predictor may keep after a request: past it (and
    /// past a quarter over what it held once loaded, so a fresh one would
    /// hold less) it is replaced by a fresh one. Nil: never.
    let memoryShare: Int64?
    let logger: Logger
    /// Starts in a row that may end killed before a start fails.
    static let crashRetries = 3
    private var predictors: [Predictor] = []
    /// Processes loading the model (killed if the pool closes first).
    private var launching: [Predictor] = []
    private var idle: [Predictor] = []
    private var waiters: [CheckedContinuation<Predictor, any Error>] = []
    private(set) var ready: Predictor.Ready?
    private(set) var inFlight = 0
    private(set) var restarts = 0
    /// Predictors replaced for holding memory over their share.
    private(set) var recycled = 0
    private var closed = false
    /// The first load, while it waits for its predictors.
    private var loading: Loading?
    /// Predictors being started (first, in place of dead ones, or fresh).
    private(set) var starting = 0
    /// Requests waiting to be batched, oldest first.
    private var pending: [Pending] = []
    private var timerArmed = false
    /// Engine calls by images per call.
    private(set) var batchSizes: [Int: Int] = [:]

    private struct Loading {
        var continuation: CheckedContinuation<Predictor.Ready, any Error>
        /// Predictors that have neither loaded nor been killed once yet.
        var unsettled: Int
    }

    private struct Pending {
        var images: [Data]
        var options: PredictOptions
        var arrived: ContinuousClock.Instant
        var continuation: CheckedContinuation<JSONValue, any Error>
    }

    init(weights: String, task: String? = nil, engine: EngineEnvironment, size: Int, threads: Int, requestTimeout: Duration = .seconds(60),
         loadTimeout: Duration = .seconds(180), batching: Batching? = nil, memoryShare: Int64? = nil, logger: Logger) {
        self.weights = weights
        self.task = task
        self.engine = engine
        self.size = max(1, size)
        self.threads = max(1, threads)
        self.requestTimeout = requestTimeout
        self.loadTimeout = loadTimeout
        self.batching = batching.flatMap { $0.maxImages > 1 ? $0 : nil }
        self.memoryShare = memoryShare
        self.logger = logger
    }

    /// Starts every predictor (in parallel) and returns once each has
    /// loaded or been killed while loading, and at least one has loaded:
    /// those killed are started again meanwhile and join when loaded.
    /// Fails if the model cannot be loaded, with every process stopped.
    func load() async throws -> Predictor.Ready {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                loading = Loading(continuation: continuation, unsettled: size)
                for _ in 0..<size { fill(first: true) }
            }
        } onCancel: {
            Task { await self.cancelLoad() }
        }
    }

    /// The load given up (a shutdown): its processes are killed.
    private func cancelLoad() {
        guard let load = loading else { return }
        loading = nil
        close()
        load.continuation.resume(throwing: CancellationError())
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
                finished(predictor)
                return answer
            } catch let died as PredictorDied {
                logger.warning("predictor \(predictor.pid) for \(weights) ended: \(died.reason); starting another")
                replace(predictor)
                try Task.checkCancellation()  // given up: not sent again
                if attempt >= 2 { throw YardError(.unavailable, field: "model", "the model's predictor failed twice on this request: \(died.reason)") }
            } catch {
                // Cancelled: the answer was read (the wait outlives the
                // cancellation), so the predictor is free again.
                if predictor.isAlive { release(predictor) } else { replace(predictor) }
                throw error
            }
        }
    }

    /// Resident memory of all its processes.
    var residentBytes: Int64 { predictors.reduce(0) { $0 + $1.residentBytes } }
    var processIDs: [Int32] { predictors.map(\.pid) }

    func close() {
        closed = true
        for predictor in launching { predictor.stop(kill: true) }
        launching = []
        if let load = loading {
            loading = nil
            load.continuation.resume(throwing: Self.unloaded)
        }
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
            replace(predictor)
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
                finished(predictor)
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
                replace(predictor)
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
                if predictor.isAlive { release(predictor) } else { replace(predictor) }
                for request in batch { request.continuation.resume(throwing: error) }
                return
            }
        }
    }

    /// After a request: a predictor whose memory stays over its share is
    /// replaced by a fresh one (what it holds goes back to the system);
    /// any other is free for the next request.
    private func finished(_ predictor: Predictor) {
        if let memoryShare, predictor.isAlive {
            let resident = predictor.residentBytes, atLoad = predictor.loadedResidentBytes
            if resident > memoryShare && resident > atLoad + atLoad / 4 {
                guard !closed, predictors.contains(where: { $0 === predictor }) else { return }
                predictors.removeAll { $0 === predictor }
                predictor.stop()
                recycled += 1
                logger.info("predictor \(predictor.pid) for \(weights) holds \(resident >> 20) MB after a request, over its share of \(memoryShare >> 20) MB (\(atLoad >> 20) MB once loaded); starting a fresh one")
                fill(first: false)
                return
            }
        }
        release(predictor)
    }

    /// A dead predictor's place goes to a new one.
    private func replace(_ dead: Predictor) {
        dead.stop(kill: true)
        guard predictors.contains(where: { $0 === dead }) else { return }  // replaced already
        predictors.removeAll { $0 === dead }
        guard !closed else { return }
        restarts += 1
        fill(first: false)
    }

    /// Starts a predictor into the pool, in a task of its own: the request
    /// whose predictor died may have been given up, and a cancelled wait
    /// would fail the load. `first`: one of the first load's.
    private func fill(first: Bool) {
        starting += 1
        Task { await self.start(first: first) }
    }

    private func start(first: Bool) async {
        defer { starting -= 1 }
        var settled = !first
        var crashes = 0
        while !closed {
            let predictor: Predictor
            do {
                predictor = try Predictor.launch(engine: engine, weights: weights, task: task, threads: threads)
            } catch {
                cannotStart(error)
                return
            }
            launching.append(predictor)
            let outcome: Result<Predictor.Ready, any Error>
            do { outcome = .success(try await predictor.awaitLoaded(timeout: loadTimeout)) } catch { outcome = .failure(error) }
            launching.removeAll { $0 === predictor }
            if closed {
                predictor.stop()
                return
            }
            switch outcome {
            case .success(let ready):
                predictors.append(predictor)
                if self.ready == nil { self.ready = ready }
                settle(&settled)
                release(predictor)
                return
            case .failure(let crash as PredictorCrashed) where crashes < Self.crashRetries:
                crashes += 1
                logger.warning("predictor \(predictor.pid) for \(weights) was killed while loading (\(crash.reason)); starting another at once")
                settle(&settled)
            case .failure(let crash as PredictorCrashed):
                cannotStart(YardError(.unavailable, field: "model", "the model's predictor was killed while loading \(crashes + 1) times in a row: \(crash.reason)"))
                return
            case .failure(let error):
                cannotStart(error)
                return
            }
        }
    }

    /// One of the first load's predictors loaded or was killed once: the
    /// load returns when all have, if one has loaded (else at the first that does).
    private func settle(_ settled: inout Bool) {
        guard var load = loading else { return }
        if !settled {
            settled = true
            load.unsettled -= 1
            loading = load
        }
        guard load.unsettled <= 0, let ready else { return }
        loading = nil
        load.continuation.resume(returning: ready)
    }

    /// A predictor could not be started: during the first load, the model
    /// cannot be loaded (the load fails, every process stopped); later,
    /// requests fail once no predictor is left or starting.
    private func cannotStart(_ error: any Error) {
        if let load = loading {
            loading = nil
            close()
            load.continuation.resume(throwing: error)
            return
        }
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
