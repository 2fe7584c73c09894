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

    public init(options: YardOptions, store: any JobStore, queue: any JobQueue, artifacts: any ArtifactStore,
                engine: EngineEnvironment) {
        self.options = options
        self.store = store
        self.queue = queue
        self.control = JobControl(store: store, queue: queue)
        self.artifacts = artifacts
        self.engine = engine
        self.spool = TrackingSpool(directory: options.dataDirectory + "/tracking", logger: Logger(label: "yard.tracking"),
                                   report: Self.trackingReport(store), registrar: Self.registrar(store))
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

    /// The embedded default in `options.dataDirectory`.
    public static func embedded(_ options: YardOptions) throws -> Yard {
        var options = options
        options.dataDirectory = URL(fileURLWithPath: options.dataDirectory).standardizedFileURL.path
        do {
            try FileManager.default.createDirectory(atPath: options.dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw YardError(.invalidInput, field: "--data-dir", "--data-dir: cannot create \(options.dataDirectory): \(error.localizedDescription)")
        }
        let database = try YardDatabase(path: options.dataDirectory + "/yard.sqlite")
        return Yard(options: options, store: SQLiteJobStore(database: database), queue: SQLiteJobQueue(database: database),
                    artifacts: LocalArtifactStore(root: options.dataDirectory + "/artifacts"),
                    engine: EngineEnvironment.resolve(python: options.python, dataDirectory: options.dataDirectory))
    }

    public func workers(runner: (any EngineRunner)? = nil, logger: Logger) -> [Worker] {
        let runner = runner ?? PythonEngineRunner(environment: engine)
        let host = ProcessInfo.processInfo.hostName
        let defaultURI = ProcessInfo.processInfo.environment["MLFLOW_TRACKING_URI"].flatMap { $0.isEmpty ? nil : $0 }
        let trackers: [any Tracker] = [StoreTracker(store: store), MLflowTracker(spool: spool, store: store, defaultURI: defaultURI,
                                                                                     jobsDirectory: options.dataDirectory + "/jobs", host: host)]
        return (0..<options.workers).map { index in
            Worker(configuration: .init(id: "\(host)-\(getpid())-\(index)", dataDirectory: options.dataDirectory,
                                        stopGrace: options.stopGrace),
                   control: control, runner: runner, trackers: trackers, artifacts: artifacts,
                   logger: logger)
        }
    }

    public func buildRouter() -> Router<BasicRequestContext> {

        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: AuthMiddleware(token: options.token))
        router.get("/health") { _, _ in
            try JSONResponse.make(["status": "ok"])
        }
        JobsController(control: control, baseDirectory: FileManager.default.currentDirectoryPath)
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
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = workers(logger: logger).map { .init(service: $0) }
        services.append(.init(service: spool))
        services.append(.init(service: app))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
