import Foundation
import Logging
import YardDatasets
import YardDomain
import ServiceLifecycle
import Synchronization
import YardEngine

/// Limits on what a predict request may carry.
public struct ServingLimits: Sendable {
    public var maxImageBytes = 20 << 20
    public var maxSide = 8000
    public var maxImages = 16
    /// Largest request body (all of a multipart request's images together).
    public var maxRequestBytes = 64 << 20
    /// Most pixels in one request, all its images together, read from their
    /// headers before any is decoded (a 413 beyond). Decoded, a pixel is 3
    /// bytes: 64 MP is about 192 MB in a predictor, one image at the largest
    /// side (8000x8000) or 5 phone photos of 12 MP; 16 of those (576 MB) are
    /// refused, and a few KB of PNG can declare that much.
    public var maxPixels = 64_000_000
    /// Predict requests held at once (waiting or running); more get a 503.
    public var maxWaiting = 256
    public init() {}
}

/// How the predictor pool is laid out and how much it may hold.
public struct ServingOptions: Sendable {
    /// Predictor processes per loaded version (default: one per core, at most 4).
    public var processes: Int
    /// Torch threads per process (default: the cores shared among the processes).
    public var threads: Int
    /// Loaded versions are unloaded, least recently used first, beyond this
    /// many bytes of predictor memory (one version always stays). A
    /// predictor over its share (this over `processes`) after a request is
    /// replaced by a fresh one.
    public var memoryLimit: Int64 = 4 << 30
    public var requestTimeout: Duration = .seconds(60)
    public var loadTimeout: Duration = .seconds(180)
    /// How long a version that failed to load answers with that failure
    /// before a request may try loading it again.
    public var loadRetryDelay: Duration = .seconds(10)
    public var limits = ServingLimits()
    /// A version whose health-check predict takes longer is not switched to.
    public var healthLatency: Duration = .seconds(20)
    /// An export (`yard models export`) that takes longer is killed.
    public var exportTimeout: Duration = .seconds(600)

    /// Dynamic batching (`--serve-batch`, `--serve-batch-wait-ms`): off on
    /// CPU, where one image per process keeps every core busy; on a GPU one
    /// process gathers up to 8 images within 5 ms.
    public var batching: Batching?

    public init(cores: Int = ProcessInfo.processInfo.activeProcessorCount, gpus: Int = ServingOptions.gpuCount()) {
        if gpus > 0 {
            processes = 1
            threads = max(1, min(4, cores))
            batching = Batching(maxImages: 8, maxWait: .milliseconds(5))
        } else {
            processes = min(4, max(1, cores))
            threads = max(1, cores / processes)
        }
    }

    /// NVIDIA GPUs the driver shows (`/proc/driver/nvidia/gpus`); Ultralytics
    /// puts a model on the first one by itself.
    public static func gpuCount(driver: String = "/proc/driver/nvidia/gpus") -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: driver)) ?? []).count
    }
}

/// What runs a version's model: torch (its `.pt` weights) or onnxruntime
/// (its ONNX export, made first by `yard models export`).
public enum ServingRuntime: String, Sendable, CaseIterable {
    case torch, onnx

    /// `?runtime=`: torch (or pytorch) by default, or onnx.
    public static func parse(_ text: String?) throws(YardError) -> ServingRuntime {
        guard let text, !text.isEmpty else { return .torch }
        if text.lowercased() == "pytorch" { return .torch }
        guard let runtime = ServingRuntime(rawValue: text.lowercased()) else {
            throw YardError.invalid("runtime", "\"\(text.prefix(40))\" is not a runtime; use torch or onnx")
        }
        return runtime
    }
}

/// One answered request.
public struct Prediction: Sendable {
    public var version: ModelVersion
    public var runtime: ServingRuntime
    public var task: String
    public var results: [JSONValue]
    /// Decode and inference times the predictor measured, in ms.
    public var timing: [String: JSONValue]
}

/// The versions being served: each loaded once into a `PredictorPool`
/// (fetched into the weights cache first), kept while used, unloaded least
/// recently used first past the memory limit. A version in use is never
/// unloaded under a request: eviction waits for its requests to finish.
public actor ModelServer {
    let engine: EngineEnvironment
    public nonisolated let weights: WeightsCache
    public nonisolated let options: ServingOptions
    let logger: Logger
    private var pools: [String: Entry] = [:]
    private var failedLoads: [String: (until: Date, error: any Error)] = [:]
    private var clock = 0

    struct Entry {
        var load: Task<(PredictorPool, Predictor.Ready), any Error>
        var lastUsed: Int
        var users = 0
        var loadMilliseconds: Double?
    }

    public init(engine: EngineEnvironment, weights: WeightsCache, options: ServingOptions = ServingOptions(), logger: Logger) {
        self.engine = engine
        self.weights = weights
        self.options = options
        self.logger = logger
        weights.clearScratch()
    }

    private nonisolated let admitted = Mutex(0)

    /// Takes a place among the requests held at once; false when all are taken.
    public nonisolated func admit() -> Bool {
        admitted.withLock { count in
            guard count < options.limits.maxWaiting else { return false }
            count += 1
            return true
        }
    }

    public nonisolated func leave() { admitted.withLock { $0 -= 1 } }

    /// Checks every image before any reaches a predictor: size, a known
    /// image header, its dimensions. Throws a 4xx `YardError` naming the image.
    public nonisolated func validate(_ images: [Data]) throws(YardError) {
        let limits = options.limits
        guard !images.isEmpty else { throw YardError.invalid("images", "no image in the request; send image bytes (image/jpeg, image/png, ...) or multipart/form-data") }
        guard images.count <= limits.maxImages else {
            throw YardError.invalid("images", "\(images.count) images in one request; at most \(limits.maxImages)")
        }
        var pixels = 0
        for (index, image) in images.enumerated() {
            let name = "image \(index + 1)"
            guard image.count <= limits.maxImageBytes else {
                throw YardError(.tooLarge, field: "images", "\(name) is \(image.count >> 20) MB; at most \(limits.maxImageBytes >> 20) MB")
            }
            let head = [UInt8](image.prefix(ImageProbe.headBytes)), tail = [UInt8](image.suffix(2))
            switch ImageProbe.probe(head: head, tail: tail, size: Int64(image.count), ext: "") {
            case .ok(let info), .warning(let info, _):
                guard info.width <= limits.maxSide, info.height <= limits.maxSide else {
                    throw YardError.invalid("images", "\(name) is \(info.width)x\(info.height); at most \(limits.maxSide) pixels a side")
                }
                pixels += info.width * info.height
            case .corrupt(let why):
                throw YardError.invalid("images", "\(name): \(why)")
            case .unchecked(let format):
                throw YardError.invalid("images", "\(name): \(format) images are not served; send JPEG, PNG, BMP, WebP or TIFF")
            }
        }
        guard pixels <= limits.maxPixels else {
            let what = images.count == 1 ? "the image is" : "the \(images.count) images are"
            throw YardError(.tooLarge, field: "images",
                            "\(what) \(Self.megapixels(pixels)) megapixels in all; at most \(Self.megapixels(limits.maxPixels)) megapixels per request: send fewer or smaller images")
        }
    }

    /// Pixels in megapixels, rounded up to a tenth ("64", "64.1").
    static func megapixels(_ pixels: Int) -> String {
        let tenths = (pixels + 99_999) / 100_000
        return tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(tenths % 10)"
    }

    /// Runs a request on a version (loading it first if needed).
    public func predict(_ version: ModelVersion, images: [Data], options request: PredictOptions,
                        runtime: ServingRuntime = .torch) async throws -> Prediction {
        try validate(images)
        let key = try key(version, runtime)
        let (pool, ready) = try await use(key, version, runtime)
        defer { done(key) }
        let answer = try await pool.predict(images, options: request)
        if let error = answer["error"]?.stringValue {
            // The model failed (out of memory, a runtime error): the server's
            // fault, a 503 the client may retry, not a 400.
            if answer["kind"]?.stringValue == "model" {
                throw YardError(.unavailable, field: "model", "the model failed on this request: \(Redaction.redactText(error))")
            }
            // The predictor could not read what passed the header check.
            throw YardError.invalid("images", Redaction.redactText(error))
        }
        return Prediction(version: version, runtime: runtime, task: ready.task, results: answer["results"]?.arrayValue ?? [],
                          timing: answer["ms"]?.objectValue ?? [:])
    }

    /// Loads a version if it is not (used by a hot swap before it switches).
    @discardableResult
    public func load(_ version: ModelVersion) async throws -> Double {
        let key = try key(version, .torch)
        _ = try await use(key, version, .torch)
        done(key)
        return pools[key]?.loadMilliseconds ?? 0
    }

    /// Aliases requests have named since start (with `production`, always
    /// checked): moving one of these loads and checks the new version first.
    private var servedAliases: Set<String> = ["production"]

    public func noteServed(alias: String) { servedAliases.insert(alias) }
    public func isServed(alias: String) -> Bool { servedAliases.contains(alias) }

    /// Loads a version beside whatever serves now and predicts on the
    /// engine's sample photo: the answer must have the schema the API
    /// promises and come within `healthLatency`.
    public func healthCheck(_ version: ModelVersion) async -> HealthCheck {
        do {
            let key = try key(version, .torch)
            forgetFailure(key)
            let (_, ready) = try await use(key, version, .torch)
            done(key)
            guard let path = ready.sample, let sample = FileManager.default.contents(atPath: path) else {
                throw YardError(.unavailable, field: "sample", "the engine has no sample image (ultralytics/assets/bus.jpg)")
            }
            let predictStart = ContinuousClock.now
            let prediction = try await predict(version, images: [sample], options: PredictOptions())
            let latency = ContinuousClock.now - predictStart
            if let problem = Self.schemaProblem(prediction, names: ready.names) {
                return HealthCheck(ok: false, reason: "its answer on the sample image is not valid: \(problem)", latencyMilliseconds: latency.timeInterval * 1000,
                                   loadMilliseconds: ready.loadMilliseconds, time: Date())
            }
            guard latency <= options.healthLatency else {
                return HealthCheck(ok: false, reason: "it took \(Int(latency.timeInterval * 1000)) ms on the sample image; the bound is \(Int(options.healthLatency.timeInterval * 1000)) ms",
                                   latencyMilliseconds: latency.timeInterval * 1000, loadMilliseconds: ready.loadMilliseconds, time: Date())
            }
            return HealthCheck(ok: true, reason: nil, latencyMilliseconds: latency.timeInterval * 1000, loadMilliseconds: ready.loadMilliseconds, time: Date())
        } catch {
            return HealthCheck(ok: false, reason: Redaction.redactText("\(error)"), latencyMilliseconds: nil, loadMilliseconds: nil, time: Date())
        }
    }

    /// What is wrong with an answer's shape, if anything.
    static func schemaProblem(_ prediction: Prediction, names: [Int: String]) -> String? {
        guard prediction.results.count == 1, let image = prediction.results.first else { return "expected one result, got \(prediction.results.count)" }
        guard (image["width"]?.intValue ?? 0) > 0, (image["height"]?.intValue ?? 0) > 0 else { return "no image size" }
        func number(_ value: JSONValue?) -> Double? { value?.doubleValue ?? value?.intValue.map(Double.init) }
        if let top = image["top"]?.arrayValue {
            for entry in top {
                guard let c = entry["class"]?.intValue, names[c] != nil, let p = number(entry["score"]), (0...1).contains(p) else { return "a top-k entry is malformed: \(entry)" }
            }
            return top.isEmpty ? "no top-k classes" : nil
        }
        guard let boxes = image["boxes"]?.arrayValue else { return "neither boxes nor top-k classes" }
        for box in boxes {
            guard let c = box["class"]?.intValue, names[c] != nil, let p = number(box["score"]), (0...1).contains(p),
                  let xyxy = box["xyxy"]?.arrayValue?.compactMap(number), xyxy.count == 4, xyxy.allSatisfy(\.isFinite),
                  let norm = box["xyxyn"]?.arrayValue?.compactMap(number), norm.count == 4, norm.allSatisfy({ $0 >= -1e-6 && $0 <= 1 + 1e-6 }),
                  xyxy[0] <= xyxy[2], xyxy[1] <= xyxy[3]
            else { return "a box is malformed: \(box)" }
        }
        return nil
    }

    /// What is loaded: per weights hash, its processes, memory and load time.
    public func loaded() async -> [[String: JSONValue]] {
        var out: [[String: JSONValue]] = []
        // Loads in progress are not waited for (a report never hangs on one).
        for (key, entry) in pools where entry.loadMilliseconds != nil {
            guard let (pool, ready) = try? await entry.load.value else { continue }
            out.append(["sha256": .string(key), "task": .string(ready.task), "runtime": .string(ready.runtime), "processes": .int(pool.size), "threads": .int(pool.threads),
                        "memory_bytes": .int(Int(await pool.residentBytes)), "load_ms": .double(ready.loadMilliseconds),
                        "restarts": .int(await pool.restarts), "recycled": .int(await pool.recycled), "starting": .int(await pool.starting), "in_flight": .int(await pool.inFlight),
                        "batch_sizes": .object(Dictionary(uniqueKeysWithValues: await pool.batchSizes.map { (String($0.key), JSONValue.int($0.value)) })),
                        "pids": .array(await pool.processIDs.map { .int(Int($0)) })])
        }
        return out
    }

    public func shutdown() async {
        exportProcesses.killAll()
        // Loads in progress are given up (their processes killed), not waited for.
        for entry in pools.values where entry.loadMilliseconds == nil { entry.load.cancel() }
        for entry in pools.values { if let (pool, _) = try? await entry.load.value { await pool.close() } }
        pools = [:]
    }

    /// A loaded model is named by the hash of the file it runs.
    private func key(_ version: ModelVersion, _ runtime: ServingRuntime) throws(YardError) -> String {
        switch runtime {
        case .torch:
            guard let sha = version.sha256 else {
                throw YardError(.conflict, field: "version", "\(version.name) version \(version.version) has no weights hash; register its job again")
            }
            return sha
        case .onnx:
            guard let export = version.exports?["onnx"] else {
                throw YardError(.conflict, field: "runtime", "\(version.name) version \(version.version) has no ONNX export; make it first: yard models export \(version.name) \(version.version) --format onnx")
            }
            return export.sha256
        }
    }

    /// The file a runtime loads for a version.
    private static func file(_ version: ModelVersion, _ runtime: ServingRuntime, weights: WeightsCache) async throws -> String {
        switch runtime {
        case .torch: return try await weights.file(for: version)
        case .onnx:
            guard let export = version.exports?["onnx"] else { throw YardError(.conflict, field: "runtime", "no ONNX export") }
            return try weights.file(for: export, of: version)
        }
    }

    private var exporting: [String: Task<ExportedWeights, any Error>] = [:]
    /// Export processes running now (killed at shutdown).
    private nonisolated let exportProcesses = RunningExports()

    /// Writes the version's weights in `format` with the engine (one export
    /// per file and format at a time; callers asking meanwhile share it) and
    /// keeps the file by its hash. The caller records it on the version.
    public func export(_ version: ModelVersion, format: String) async throws -> ExportedWeights {
        try ExportedWeights.validate(format: format)
        let key = "\(try key(version, .torch))/\(format)"
        if let running = exporting[key] { return try await running.value }
        let (engine, weights, timeout, running) = (self.engine, self.weights, options.exportTimeout, exportProcesses)
        let task = Task { () async throws -> ExportedWeights in
            let source = try await weights.file(for: version)
            let ext = ExportedWeights.fileExtension(format)
            // Everything the export writes (its copy of the weights, a
            // half-written file if it is killed) is in this folder, removed whole.
            let folder = try weights.scratchFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let out = "\(folder)/model.\(ext)"
            let report = try await ModelExport.run(engine: engine, weights: source, format: format, out: out, timeout: timeout, running: running)
            let kept = try await weights.keep(out, ext: ext)
            return ExportedWeights(format: format, sha256: kept.sha256, size: kept.size, imgsz: report["imgsz"]?.intValue,
                                   exportMilliseconds: report["ms"]?.doubleValue, createdAt: Date())
        }
        exporting[key] = task
        defer { exporting[key] = nil }
        let made = try await task.value
        logger.info("exported \(version.name) version \(version.version) to \(format) (\(made.sha256.prefix(12)), \(made.size >> 10) KB)")
        return made
    }

    private func use(_ key: String, _ version: ModelVersion, _ runtime: ServingRuntime, again: Bool = false) async throws -> (PredictorPool, Predictor.Ready) {
        // A version that just failed to load fails at once for a while:
        // requests do not start a load (a few processes) each.
        if let failed = failedLoads[key], failed.until > Date() { throw failed.error }
        clock += 1
        if pools[key] == nil {
            let (engine, weights, options, logger) = (self.engine, self.weights, self.options, self.logger)
            let load = Task {
                let path = try await Self.file(version, runtime, weights: weights)
                let pool = PredictorPool(weights: path, task: version.task, engine: engine, size: options.processes, threads: options.threads,
                                         requestTimeout: options.requestTimeout, loadTimeout: options.loadTimeout,
                                         batching: options.batching, memoryShare: options.memoryLimit / Int64(max(1, options.processes)),
                                         logger: logger)
                let ready = try await pool.load()
                return (pool, ready)
            }
            pools[key] = Entry(load: load, lastUsed: clock)
        }
        pools[key]?.users += 1
        pools[key]?.lastUsed = clock
        let load = pools[key]!.load
        do {
            let loaded = try await load.value
            if await loaded.0.isDead && !again {
                // Every predictor died and none could be started: load it anew.
                done(key)
                if pools[key]?.load == load { pools[key] = nil }
                await loaded.0.close()
                return try await use(key, version, runtime, again: true)
            }
            if pools[key]?.loadMilliseconds == nil {
                pools[key]?.loadMilliseconds = loaded.1.loadMilliseconds
                logger.info("loaded \(version.name) version \(version.version) on \(runtime.rawValue) (\(key.prefix(12))) in \(Int(loaded.1.loadMilliseconds)) ms")
                await evict(keeping: key)
            }
            return loaded
        } catch {
            // A failed load is not kept: after the backoff the next request tries again.
            failedLoads[key] = (Date().addingTimeInterval(options.loadRetryDelay.timeInterval), error)
            done(key)
            if pools[key]?.users == 0, pools[key]?.load == load { pools[key] = nil }
            throw error
        }
    }

    private func done(_ key: String) {
        if let users = pools[key]?.users, users > 0 { pools[key]?.users = users - 1 }
    }

    /// Forgets a failed load, so the next request tries at once (a health
    /// check asked for by hand).
    func forgetFailure(_ key: String) { failedLoads[key] = nil }

    /// Unloads the least recently used idle versions while over the memory limit.
    private func evict(keeping key: String) async {
        var total: Int64 = 0
        var sizes: [String: Int64] = [:]
        for (k, entry) in pools where entry.loadMilliseconds != nil {
            guard let (pool, _) = try? await entry.load.value else { continue }
            sizes[k] = await pool.residentBytes
            total += sizes[k]!
        }
        let order = pools.filter { $0.key != key && $0.value.users == 0 && $0.value.loadMilliseconds != nil }.sorted { $0.value.lastUsed < $1.value.lastUsed }.map(\.key)
        for victim in order where total > options.memoryLimit {
            guard let entry = pools[victim], entry.users == 0 else { continue }
            pools[victim] = nil
            total -= sizes[victim] ?? 0
            if let (pool, _) = try? await entry.load.value { await pool.close() }
            logger.info("unloaded \(victim.prefix(12)) (least recently used; predictors over \(options.memoryLimit >> 20) MB)")
        }
    }
}

/// Ends the predictor processes when the service group shuts down.
public struct ModelServerService: Service {
    let server: ModelServer

    public init(server: ModelServer) { self.server = server }

    public func run() async throws {
        try? await gracefulShutdown()
        await server.shutdown()
    }
}
