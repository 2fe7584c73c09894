import Foundation
import Logging
import ServiceLifecycle
import YardArtifacts
import YardDomain
import YardEngine
import YardQueue
import YardRedis
import YardStore
import YardTracker

/// Settings of `yard worker`.
public struct WorkerNodeOptions: Sendable {
    public var redisURL: String
    /// Pins the worker to this GPU (`CUDA_VISIBLE_DEVICES`, `device: 0`).
    public var gpu: Int?
    public var lease: Duration = .seconds(60)
    public var dataDirectory = ".yard-worker"
    public var python: String?
    public var stopGrace: Duration = .seconds(120)
    public var allowDatasetSymlinks = false
    /// The server's key file; `YARD_SECRET_KEY` takes precedence. Required:
    /// a worker opens job secrets the server sealed.
    public var secretKeyFile: String?
    /// Announcement interval (nil: a third of the lease, at most 5 s).
    public var heartbeat: Duration?
    /// Keeps the next engine started, imports done (`--no-warm-engine`: off).
    public var warmEngine = true
    /// `--tags a100,80gb`: announced, and it claims only jobs whose
    /// `resources.tags` are all among them (lowercased, sorted).
    public var tags: [String] = []

    public init(redisURL: String) { self.redisURL = redisURL }
}

/// The composition root of `yard worker`: one worker on this machine that
/// talks only to Redis (queue, ledger, registry), the tracker and the
/// artifact store. Its data dir holds its run folders, its dataset cache
/// and its tracking spool; nothing in it is shared with the server.
public struct WorkerNode: Sendable {
    public let options: WorkerNodeOptions
    public let redis: RedisClient
    public let queue: RedisJobQueue
    public let ledger: RedisLedger
    public let registry: RedisWorkerRegistry
    public let spool: TrackingSpool
    public let engine: EngineEnvironment
    public let info: WorkerInfo
    /// nvidia-smi's last reading (the heartbeat takes it; progress reports carry it).
    public let readings: GPUReadings
    /// The worker's secret key ids, checked against the server's (one line for the start banner).
    public let keyCheck: String
    let lock: DirectoryLock

    /// Checks the settings, the key, the engine (and, with `gpu`, that the
    /// GPU is usable), Redis and the key against the one the server seals
    /// with, before any job is taken: a worker that cannot train refuses to
    /// start with the reason.
    public static func start(_ options: WorkerNodeOptions, logger: Logger) async throws -> WorkerNode {
        var options = options
        let configuration = try RedisConfiguration(url: options.redisURL)
        let (box, keySource) = try secretBox(options)
        let (data, lock) = try DirectoryLock.ownDataDirectory(options.dataDirectory,
                                                             purpose: "starting another worker on it (give each worker its own --data-dir)")
        options.dataDirectory = data

        let engine = EngineEnvironment.resolve(python: options.python, dataDirectory: data)
        let (versions, device) = try probe(engine, gpu: options.gpu)

        let host = ProcessInfo.processInfo.hostName
        let id = "\(host)-\(options.gpu.map { "gpu\($0)" } ?? "cpu")-\(getpid())"
        let redis = RedisClient(configuration, name: "yard-worker-\(id)", logger: logger)
        let keys = RedisKeys()
        let keyCheck = try await checkReachable(redis, logger: logger)
            ? try await checkKey(box, source: keySource, redis: redis, keys: keys)
            : "secret key \(box.keyIDs) (not checked: Redis is not reachable yet)"
        var info = WorkerInfo(id: id, host: host, pid: getpid(), device: device, versions: versions, startedAt: Date(),
                              leaseSeconds: options.lease.timeInterval)
        info.expiresAt = info.startedAt.addingTimeInterval(60)
        info.tags = options.tags.isEmpty ? nil : options.tags
        let readings = GPUReadings()
        let pinned = options.gpu
        let ledger = RedisLedger(redis: redis, keys: keys, box: box, logger: Logger(label: "yard.reports")) {
            readings.current.filter { pinned == nil || $0.index == pinned }
        }
        // What the spool learns goes to the server as a side report: the
        // tracking state (`yard show`; the registry mirrors a version to
        // MLflow once the job's run is there).
        let spool = TrackingSpool(directory: data + "/tracking", logger: Logger(label: "yard.tracking"), secrets: box,
                                  report: { subject, status, runID, error in
                                      guard case .job(let jobID) = subject else { return }
                                      ledger.note(jobID, .tracking(status: status.rawValue, runID: runID, error: error))
                                  })
        return WorkerNode(options: options, redis: redis, queue: RedisJobQueue(redis: redis, keys: keys, lease: options.lease),
                          ledger: ledger, registry: RedisWorkerRegistry(redis: redis, keys: keys),
                          spool: spool, engine: engine, info: info, readings: readings, keyCheck: keyCheck, lock: lock)
    }

    /// A Redis that refuses us (a wrong password, a bad database) ends the
    /// start with its reason; one that is not up yet is waited for (false).
    private static func checkReachable(_ redis: RedisClient, logger: Logger) async throws -> Bool {
        do {
            try await redis.send(["PING"], timeout: .seconds(5))
            return true
        } catch {
            switch error {
            case .server, .configuration, .protocolViolation:
                throw YardError(.unavailable, field: "--redis", "--redis: \(redis.configuration) refused the worker: \(error)")
            case .connection, .timeout:
                logger.warning("Redis at \(redis.configuration) is not reachable yet (\(error)); the worker retries until it is")
                return false
            }
        }
    }

    /// Checks the worker's keys against the key the server announced it
    /// seals job secrets with: a worker that could not open them refuses to
    /// start, naming both key ids (before, it started and then failed every
    /// job it claimed). Returns the line that says how the check went; a
    /// server that announced no key yet (an older one) leaves it to the
    /// jobs: one with secrets sealed under another key fails naming both ids.
    public static func checkKey(_ box: SecretBox, source: String, redis: RedisClient, keys: RedisKeys = RedisKeys()) async throws -> String {
        let announced: String?
        do { announced = try await redis.send(["GET", keys.secretKey], timeout: .seconds(5)).string } catch {
            return "secret key \(box.keyIDs) (not checked: \(error))"
        }
        guard let expected = announced else {
            return "secret key \(box.keyIDs) (the server has not announced its key yet)"
        }
        guard box.keys.contains(where: { $0.id == expected }) else {
            let option = source == SecretKeyFile.environmentVariable ? source : "--secret-key-file \(source)"
            throw YardError(.invalidInput, field: "--secret-key-file",
                            "\(option) holds \(box.keys.count == 1 ? "key" : "keys") \(box.keyIDs), but the server seals job secrets with key \(expected): give the worker a copy of the server's DATA/secret.key")
        }
        return "secret key \(box.keyIDs) (the server's is \(expected))"
    }

    /// The key that opens the secrets the server sealed, and where it came
    /// from: never made up here (a new key would open nothing).
    static func secretBox(_ options: WorkerNodeOptions) throws -> (SecretBox, source: String) {
        let environment = ProcessInfo.processInfo.environment
        if let keys = environment[SecretKeyFile.environmentVariable], !keys.isEmpty {
            return (try SecretBox(keys: SecretBox.parseKeys(keys, source: SecretKeyFile.environmentVariable)), SecretKeyFile.environmentVariable)
        }
        guard let path = options.secretKeyFile else {
            throw YardError(.invalidInput, field: "--secret-key-file",
                            "a worker needs the server's secret key to open job secrets: set YARD_SECRET_KEY or pass --secret-key-file (a copy of the server's DATA/secret.key)")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw YardError(.invalidInput, field: "--secret-key-file", "--secret-key-file: \(path) does not exist; copy the server's DATA/secret.key here")
        }
        return (try SecretKeyFile.load(path: path, environment: [:]), path)
    }

    /// Runs the engine's doctor (pinned to the GPU, if any): its versions,
    /// and the device the worker trains on. Seed 003's check: a worker
    /// pinned to a GPU that torch cannot use refuses to start.
    static func probe(_ engine: EngineEnvironment, gpu: Int?) throws -> (versions: [String: String], device: String) {
        let extra = gpu.map { ["CUDA_VISIBLE_DEVICES": String($0)] } ?? [:]
        let result = try engine.runTool(["doctor"], extra: extra)
        guard result.status == 0, let line = result.stdout.split(separator: "\n").last,
              case .object(let report)? = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) else {
            let why = result.stderr.split(separator: "\n").last.map(String.init) ?? "exit \(result.status)"
            throw YardError(.unavailable, field: "--python",
                            "the engine's Python (\(engine.python)) cannot run the engine: \(why); run scripts/setup.sh or pass --python")
        }
        if let problem = report["problems"]?.arrayValue?.first?.stringValue {
            throw YardError(.unavailable, field: "--python", "the engine cannot train here: \(problem)")
        }
        var versions: [String: String] = [:]
        for key in ["python", "ultralytics", "torch"] { versions[key] = report[key]?.stringValue }
        let devices = report["cuda_devices"]?.arrayValue ?? []
        guard let gpu else { return (versions, devices.isEmpty ? "cpu" : "auto") }
        guard let first = devices.first else {
            throw YardError(.unavailable, field: "--gpu",
                            "--gpu \(gpu): no usable CUDA device (torch sees none with CUDA_VISIBLE_DEVICES=\(gpu)); check nvidia-smi and the driver, or start the worker without --gpu to train on the CPU")
        }
        versions["gpu"] = first["name"]?.stringValue
        return (versions, "cuda:\(gpu)")
    }

    /// The worker, its announcements and its tracking spool, in start order.
    public func services(runner: (any EngineRunner)? = nil, logger: Logger) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let extra = options.gpu.map { ["CUDA_VISIBLE_DEVICES": String($0)] } ?? [:]
        let runner = runner ?? PythonEngineRunner(environment: engine, extraEnvironment: extra, warm: options.warmEngine)
        let defaultURI = environmentValue("MLFLOW_TRACKING_URI")
        let trackers: [any Tracker] = [StoreTracker(records: ledger),
                                       MLflowTracker(spool: spool, secrets: ledger, defaultURI: defaultURI,
                                                     jobsDirectory: options.dataDirectory + "/jobs", host: info.host)]
        var configuration = Worker.Configuration(id: info.id, dataDirectory: options.dataDirectory, stopGrace: options.stopGrace,
                                                 allowExternalSymlinks: options.allowDatasetSymlinks)
        // With CUDA_VISIBLE_DEVICES=N the pinned GPU is the engine's device 0.
        if options.gpu != nil { configuration.trainOverrides["device"] = "0" }
        configuration.tags = options.tags
        configuration.gpus = { [readings, pinned = options.gpu] in readings.current.filter { pinned == nil || $0.index == pinned } }
        let worker = Worker(configuration: configuration, ledger: ledger, queue: queue, runner: runner, trackers: trackers,
                            artifacts: LocalArtifactStore(root: options.dataDirectory + "/artifacts"), logger: logger)
        let interval = options.heartbeat ?? min(.seconds(5), options.lease / 3)
        let presence = WorkerPresence(registry: registry, entries: [.init(worker: worker, info: info, gpu: options.gpu)],
                                      interval: interval, readings: readings, backlog: { [ledger, spool] in
                                          let spooled = await spool.backlog()
                                          return WorkerBacklog(reports: ledger.waitingReports, spoolOperations: spooled.operations,
                                                               spoolOldestSeconds: spooled.oldest.map { max(0, Date().timeIntervalSince($0)) } ?? 0)
                                      }, logger: logger)
        // The spool first so it stops last: a stopping worker still spools its job's last calls.
        return [.init(service: spool), .init(service: presence), .init(service: worker)]
    }
}
