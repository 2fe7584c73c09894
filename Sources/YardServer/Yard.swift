import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import YardArtifacts
import YardDomain
import YardEngine
import YardQueue
import YardStore
import YardTracker
import YardWorker

/// Settings of `yard up`.
public struct YardOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8787
    public var dataDirectory = ".yard"
    public var workers = 1
    public var python: String?
    /// When set, every `/api` request needs `Authorization: Bearer TOKEN`.
    public var token: String?
    public var stopGrace: Duration = .seconds(120)
    /// Whether a dataset may hold symlinks to files outside its folder.
    public var allowDatasetSymlinks = false
    /// The key file that seals job secrets (default `DATA/secret.key`);
    /// `YARD_SECRET_KEY` takes precedence.
    public var secretKeyFile: String?

    public init() {}
}

/// The composition root: the embedded default (SQLite store and queue,
/// local artifacts, store tracker) wired once, for `yard up` and tests alike.
public struct Yard: Sendable {
    public let options: YardOptions
    public let store: any JobStore
    public let queue: any JobQueue
    public let control: JobControl
    public let artifacts: any ArtifactStore
    public let engine: EngineEnvironment
    /// MLflow calls waiting to be sent (`DATA/tracking`).
    public let spool: TrackingSpool
    /// Held while this process owns the data dir (the embedded default).
    let lock: DirectoryLock?

    public init(options: YardOptions, store: any JobStore, queue: any JobQueue, artifacts: any ArtifactStore,
                engine: EngineEnvironment, secrets: SecretBox? = nil) {
        self.init(options: options, store: store, queue: queue, artifacts: artifacts, engine: engine, secrets: secrets, lock: nil)
    }

    init(options: YardOptions, store: any JobStore, queue: any JobQueue, artifacts: any ArtifactStore,
         engine: EngineEnvironment, secrets: SecretBox?, lock: DirectoryLock?) {
        self.options = options
        self.store = store
        self.queue = queue
        self.control = JobControl(store: store, queue: queue)
        self.artifacts = artifacts
        self.engine = engine
        self.lock = lock
        self.spool = TrackingSpool(directory: options.dataDirectory + "/tracking", logger: Logger(label: "yard.tracking"),
                                   secrets: secrets, report: Self.trackingReport(store), registrar: Self.registrar(store))
    }

    public var registry: ModelRegistry {
        ModelRegistry(store: store, defaultURI: ProcessInfo.processInfo.environment["MLFLOW_TRACKING_URI"].flatMap { $0.isEmpty ? nil : $0 })
    }

    /// Auto-registration (`mlflow.register_model`) from the spool, mirrored in the store.
    static func registrar(_ store: any JobStore) -> TrackingSpool.Registrar {
        { jobID, runID, client, name, alias in
            let job = try await store.require(jobID)
            let version = try await ModelRegistry.register(client: client, runID: runID, job: job, name: name, alias: alias)
            try await ModelRegistry(store: store, defaultURI: nil).mirror(version)
        }
    }

    /// Mirrors the spool's progress onto the job record (`yard show` reads it).
    static func trackingReport(_ store: any JobStore) -> TrackingSpool.Report {
        { jobID, status, runID, error in
            guard let job = try? await store.job(jobID) else { return }
            let tracking = status.rawValue
            guard job.tracking != tracking || job.trackingError != error || (runID != nil && job.mlflowRunID != runID) else { return }
            _ = try? await store.update(jobID) { job in
                job.tracking = tracking
                job.trackingError = error
                if let runID { job.mlflowRunID = runID }
            }
        }
    }

    /// The embedded default in `options.dataDirectory`, owned by this process
    /// (a second one on the same folder is refused). Everything in it is
    /// private to the user: the folder is 0700 and this process creates files
    /// 0600 (its umask, inherited by the engine). Job secrets are sealed with
    /// the key from `YARD_SECRET_KEY` or `options.secretKeyFile`.
    public static func embedded(_ options: YardOptions) async throws -> Yard {
        var options = options
        options.dataDirectory = URL(fileURLWithPath: options.dataDirectory).standardizedFileURL.path
        let data = options.dataDirectory
        umask(0o077)
        do {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        } catch {
            throw YardError(.invalidInput, field: "--data-dir", "--data-dir: cannot create \(data): \(error.localizedDescription)")
        }
        _ = chmod(data, 0o700)
        let lock = try DirectoryLock(directory: data, purpose: "starting another")
        let box = try SecretKeyFile.load(path: options.secretKeyFile ?? SecretKeyFile.defaultPath(dataDirectory: data))
        let database = try YardDatabase(path: data + "/yard.sqlite")
        let store = SQLiteJobStore(database: database, secrets: box)
        try await store.resealSecrets()
        return Yard(options: options, store: store, queue: SQLiteJobQueue(database: database),
                    artifacts: LocalArtifactStore(root: data + "/artifacts"),
                    engine: EngineEnvironment.resolve(python: options.python, dataDirectory: data), secrets: box, lock: lock)
    }

    public func workers(runner: (any EngineRunner)? = nil, logger: Logger) -> [Worker] {
        let runner = runner ?? PythonEngineRunner(environment: engine)
        let host = ProcessInfo.processInfo.hostName
        let defaultURI = ProcessInfo.processInfo.environment["MLFLOW_TRACKING_URI"].flatMap { $0.isEmpty ? nil : $0 }
        let ledger = StoreLedger(control: control)
        let trackers: [any Tracker] = [StoreTracker(records: ledger), MLflowTracker(spool: spool, secrets: ledger, defaultURI: defaultURI,
                                                                                      jobsDirectory: options.dataDirectory + "/jobs", host: host)]
        return (0..<options.workers).map { index in
            Worker(configuration: .init(id: "\(host)-\(getpid())-\(index)", dataDirectory: options.dataDirectory,
                                        stopGrace: options.stopGrace, allowExternalSymlinks: options.allowDatasetSymlinks),
                   ledger: ledger, queue: queue, runner: runner, trackers: trackers, artifacts: artifacts,
                   logger: logger)
        }
    }

    public func buildRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: CanonicalPathMiddleware())
        router.add(middleware: AuthMiddleware(token: options.token))
        router.get("/health") { _, _ in
            try JSONResponse.make(["status": "ok"])
        }
        JobsController(control: control)
            .addRoutes(to: router.group("/api/jobs"))
        ModelsController(registry: registry, store: store).addRoutes(to: router.group("/api/models"))
        return router
    }

    /// The HTTP server; `onServerRunning` gets the port it listens on (useful with port 0).
    public func buildApplication(logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol & Service
    {
        Application(router: buildRouter(),
                    configuration: .init(address: .hostname(options.host, port: options.port), serverName: "trainyard"),
                    onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
                    logger: logger)
    }

    /// `yard up`: recovers interrupted jobs, then serves the API and runs the
    /// workers until SIGINT/SIGTERM, when engines stop at a checkpoint and
    /// their jobs go back to the queue.
    public func runUp(logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let requeued = try await control.recover()
        if !requeued.isEmpty { logger.info("resuming interrupted jobs: \(requeued.joined(separator: ", "))") }
        let app = buildApplication(logger: logger, onServerRunning: onServerRunning)
        let services = services(app: app, logger: logger)
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// What `yard up` runs, in start order; a `ServiceGroup` shuts them down in reverse.
    public func services(app: some Service, runner: (any EngineRunner)? = nil, logger: Logger)
        -> [ServiceGroupConfiguration.ServiceConfiguration]
    {
        // The spool first so it stops last: stopping workers still spool their jobs' last calls.
        [.init(service: spool)] + workers(runner: runner, logger: logger).map { .init(service: $0) } + [.init(service: app)]
    }
}
