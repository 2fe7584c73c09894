import Foundation
import Hummingbird
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import YardArtifacts
import YardBackup
import YardDomain
import YardJobs
import YardEngine
import YardQueue
import YardRedis
import YardStore
import YardServing
import YardSweeps
import YardTracker
import YardWebhooks
import YardWorker

/// Settings of `yard up`.
public struct YardOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8787
    public var dataDirectory = ".yard"
    public var workers = 1
    /// `--worker-tags`: the tags the local workers offer jobs' `resources.tags`.
    public var workerTags: [String] = []
    public var python: String?
    /// When set, every `/api` request needs `Authorization: Bearer TOKEN`.
    public var token: String?
    public var stopGrace: Duration = .seconds(120)
    /// Whether a dataset may hold symlinks to files outside its folder.
    public var allowDatasetSymlinks = false
    /// The key file that seals job secrets (default `DATA/secret.key`);
    /// `YARD_SECRET_KEY` takes precedence.
    public var secretKeyFile: String?
    /// `yard server --redis URL`: workers on other machines share the queue
    /// through Redis; `workers` local ones (0 by default) run beside the server.
    public var redisURL: String?
    /// How long a Redis claim lives without a heartbeat (local workers).
    public var lease: Duration = .seconds(60)
    /// With Redis: the folder wyolo clients' `config_path`s must lie in;
    /// set, the server takes their job messages from `wyoloTopic`.
    public var wyoloConfigs: String?
    public var wyoloTopic = "training_queue"
    /// `--dataset-root`: folders `datasets add` reads from (needed when a token is).
    public var datasetRoots: [String] = []
    /// `--max-dataset-bytes`: the most a ZIP added as a dataset may unpack to, counted as written.
    public var maxDatasetBytes: Int64 = 10_000_000_000
    /// Each local worker keeps its next engine started, imports done (`--no-warm-engine`: off).
    public var warmEngine = true
    /// The predictor pool behind `/api/predict` (processes, threads, limits).
    public var serving = ServingOptions()
    /// `--event-retention-days`: how long jobs' epoch and log events stay in the event log (state events stay for ever).
    public var eventRetention = EventRetention()
    /// When the store's commits are on the disk (`--sync`).
    public var sync = YardDatabase.Sync.normal
    /// `--tls-cert/--tls-key`: serve HTTPS (nil: HTTP).
    public var tls: ServerTLS?
    /// `--webhook`, `--allow-private-webhooks`, the server-wide secret: what the webhook deliverer sends where.
    public var webhooks = WebhookSettings()
    /// `--secure-cookies`: the dashboard's session cookie is marked Secure
    /// (set when users reach the server over HTTPS, through a proxy).
    public var secureCookies = false
    /// Whether HTTP requests are counted and timed for `/metrics` (off only
    /// in the benchmark's baseline, which measures what counting costs).
    public var httpMetrics = true
    /// `--fair-share`, `--priority-aging`, `--max-running`: how the queue (embedded or Redis) picks the next job.
    public var scheduling = SchedulingPolicy.default
    /// OpenTelemetry traces of job runs and predict requests, sent to an
    /// OTLP/HTTP collector (from `OTEL_EXPORTER_OTLP_ENDPOINT`); nil: off.
    public var tracing: TraceSettings?
    /// `--gc-at HH:MM`: `yard gc` once a day at that local time; nil: never (run it from cron).
    public var retention: RetentionSchedule?

    public init() {}
}

/// What a server with workers on other machines adds: Redis, where they
/// read jobs (the board) and report (the consumer), and the key that
/// seals the secrets they read.
public struct RemoteWorkers: Sendable {
    public let redis: RedisClient
    public let keys: RedisKeys
    public let box: SecretBox
    public var board: RedisJobBoard { RedisJobBoard(redis: redis, keys: keys, box: box) }

    public init(redis: RedisClient, keys: RedisKeys, box: SecretBox) {
        self.redis = redis
        self.keys = keys
        self.box = box
    }
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
    /// Where workers announce themselves (`GET /api/workers`).
    public let registry: any WorkerRegistry
    /// The local workers' GPUs as their heartbeat last read them (the free
    /// memory `resources.gpu_memory_gb` is matched against).
    let gpuReadings = GPUReadings()
    /// Set when workers run on other machines (`yard server --redis`).
    public let remote: RemoteWorkers?
    /// Sweeps: trials as jobs, the study in the engine's Optuna process.
    public let sweeps: SweepService
    /// Dataset versions: import, validation, the version store.
    public let datasets: DatasetService
    /// The versions being served (`/api/predict`), loaded on first use.
    public let modelServer: ModelServer
    /// Sends webhooks for what the event log records (`GET /api/webhooks` shows it).
    public let webhooks: WebhookDeliverer
    /// Predict requests counted for `/metrics`.
    public let servingMetrics = ServingMetrics()
    /// The rest of `/metrics`: jobs, queue, workers, training, spool, HTTP (this server's own registry).
    public let metrics = YardMetrics()
    /// Sends spans when `options.tracing` is set; nil (and nothing traced) otherwise.
    public let traces: TraceExporter?
    /// The dashboard's signed-in browsers (with a token), kept in the store.
    let sessions: SessionStore
    /// Alias moves, one at a time across every request.
    let aliasLock = AsyncLock()
    /// Held while this process owns the data dir (the embedded default).
    let lock: DirectoryLock?

    /// `registry`: where the local workers announce themselves (without
    /// Redis), when the queue was given it too (the reason a routed job waits).
    public init(options: YardOptions, store: any JobStore, queue: any JobQueue, artifacts: any ArtifactStore,
                engine: EngineEnvironment, secrets: SecretBox? = nil, remote: RemoteWorkers? = nil, registry: (any WorkerRegistry)? = nil) {
        self.init(options: options, store: store, queue: queue, artifacts: artifacts, engine: engine, secrets: secrets, remote: remote, lock: nil,
                  registry: registry)
    }

    init(options: YardOptions, store: any JobStore, queue: any JobQueue, artifacts: any ArtifactStore,
         engine: EngineEnvironment, secrets: SecretBox?, remote: RemoteWorkers?, lock: DirectoryLock?, registry: (any WorkerRegistry)? = nil) {
        self.options = options
        self.store = store
        self.sessions = SessionStore(records: store, serverToken: options.token)
        self.queue = queue
        self.remote = remote
        self.registry = remote.map { RedisWorkerRegistry(redis: $0.redis, keys: $0.keys) } ?? registry ?? MemoryWorkerRegistry()
        self.control = JobControl(store: store, queue: queue, board: remote?.board)
        self.artifacts = artifacts
        self.engine = engine
        self.lock = lock
        self.traces = options.tracing.map { TraceExporter(settings: $0, logger: Logger(label: "yard.traces")) }
        self.spool = TrackingSpool(directory: options.dataDirectory + "/tracking", logger: Logger(label: "yard.tracking"),
                                   secrets: secrets, report: Self.trackingReport(control), mirrored: Self.mirrored(store))
        let sweepTracker = MLflowSweepTracker(spool: spool, defaultURI: environmentValue("MLFLOW_TRACKING_URI"),
                                              directory: options.dataDirectory + "/sweeps")
        self.sweeps = SweepService(control: control, study: StudyProcess(engine: engine), dataDirectory: options.dataDirectory,
                                   parser: JobConfigParser { FileManager.default.fileExists(atPath: $0) }, tracker: sweepTracker,
                                   logger: Logger(label: "yard.sweeps"))
        let uri = environmentValue("MLFLOW_TRACKING_URI")
        self.modelServer = ModelServer(engine: engine, weights: WeightsCache(root: options.dataDirectory + "/models", artifacts: artifacts,
                                                                             store: store, defaultTrackingURI: uri),
                                       options: options.serving, logger: Logger(label: "yard.serving"))
        self.webhooks = WebhookDeliverer(store: store, settings: options.webhooks, stateFile: options.dataDirectory + "/webhooks.json",
                                         logger: Logger(label: "yard.webhooks"))
        self.datasets = DatasetService(store: store, dataDirectory: options.dataDirectory, importRoots: options.datasetRoots,
                                       tokenRequired: options.token != nil, allowSymlinks: options.allowDatasetSymlinks,
                                       maxDatasetBytes: options.maxDatasetBytes)
    }

    /// The registry of record; weights cached by hash in `DATA/models`.
    public var models: ModelRegistry {
        ModelRegistry(store: store, weights: modelServer.weights, spool: spool, server: modelServer,
                      defaultTrackingURI: environmentValue("MLFLOW_TRACKING_URI"), lock: aliasLock)
    }

    /// The number MLflow gave a version the spool mirrored, on the version.
    static func mirrored(_ store: any JobStore) -> TrackingSpool.Mirrored {
        { name, version, mlflowVersion in
            try? await RegistryControl(store: store).mirrored(name: name, version: version, mlflowVersion: mlflowVersion)
        }
    }

    /// Mirrors the spool's progress onto the job record (`yard show` reads
    /// it) through the job layer, and a sweep's parent run id onto the sweep.
    static func trackingReport(_ control: JobControl) -> TrackingSpool.Report {
        { subject, status, runID, error in
            switch subject {
            case .model: return  // the registry's operations: `mirrored` records what they made
            case .sweep(let id):
                guard let runID, let sweep = try? await control.store.sweep(id), sweep.mlflowRunID != runID else { return }
                try? await SweepControl(store: control.store).tracked(id, runID: runID)
            case .job(let id):
                try? await control.recordTracking(jobID: id, status: status.rawValue, runID: runID, error: error)
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
        let (data, lock) = try DirectoryLock.ownDataDirectory(options.dataDirectory, purpose: "starting another")
        options.dataDirectory = data
        let box = try SecretKeyFile.load(path: options.secretKeyFile ?? SecretKeyFile.defaultPath(dataDirectory: data))
        let database = try YardDatabase(path: data + "/yard.sqlite", sync: options.sync)
        let store = SQLiteJobStore(database: database, secrets: box)
        try await store.resealSecrets()
        let local = MemoryWorkerRegistry()
        var queue: any JobQueue = SQLiteJobQueue(database: database, policy: options.scheduling, workers: local)
        var remote: RemoteWorkers?
        if let url = options.redisURL {
            let redis = RedisClient(try RedisConfiguration(url: url), name: "yard-server", logger: Logger(label: "yard.redis"))
            remote = RemoteWorkers(redis: redis, keys: RedisKeys(), box: box)
            let shared = RedisJobQueue(redis: redis, lease: options.lease, policy: options.scheduling)
            // Workers on other machines claim by it; Redis down now: the first submit publishes it.
            try? await shared.publishPolicy()
            queue = shared
        }
        return Yard(options: options, store: store, queue: queue, artifacts: LocalArtifactStore(root: data + "/artifacts"),
                    engine: EngineEnvironment.resolve(python: options.python, dataDirectory: data), secrets: box, remote: remote, lock: lock,
                    registry: local)
    }

    public func workers(runner: (any EngineRunner)? = nil, logger: Logger) -> [Worker] {
        let host = ProcessInfo.processInfo.hostName
        let defaultURI = environmentValue("MLFLOW_TRACKING_URI")
        // Beside a Redis queue, local workers report like remote ones, so
        // one attempt's reports are fenced the same way wherever it ran.
        let ledger: any JobLedger = remote.map { RedisLedger(redis: $0.redis, keys: $0.keys, box: $0.box, logger: logger) } ?? StoreLedger(control: control)
        let trackers: [any Tracker] = [StoreTracker(records: ledger), MLflowTracker(spool: spool, secrets: ledger, defaultURI: defaultURI,
                                                                                      jobsDirectory: options.dataDirectory + "/jobs", host: host)]
        let readings = gpuReadings
        return (0..<options.workers).map { index in
            var configuration = Worker.Configuration(id: "\(host)-\(getpid())-\(index)", dataDirectory: options.dataDirectory,
                                                     stopGrace: options.stopGrace, allowExternalSymlinks: options.allowDatasetSymlinks)
            configuration.tags = options.workerTags
            configuration.gpus = { readings.current }
            return Worker(configuration: configuration,
                   ledger: ledger, queue: queue, runner: runner ?? PythonEngineRunner(environment: engine, warm: options.warmEngine),
                   trackers: trackers, artifacts: artifacts,
                   logger: logger)
        }
    }

    public func buildRouter() -> Router<YardRequestContext> {
        let router = Router(context: YardRequestContext.self)
        if options.httpMetrics { router.add(middleware: HTTPMetricsMiddleware(metrics: metrics)) }
        router.add(middleware: SecurityHeadersMiddleware())
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: CanonicalPathMiddleware())
        let users = UserControl(store: store)
        router.add(middleware: AuthMiddleware(token: options.token, sessions: sessions, users: users))
        WebController().addRoutes(to: router)
        SessionController(token: options.token, sessions: sessions, secureCookies: options.secureCookies, users: users).addRoutes(to: router)
        UsersController(users: users).addRoutes(to: router)
        EventHeadController(store: store).addRoutes(to: router)
        router.get("/health") { _, _ in
            try JSONResponse.make(["status": "ok"])
        }
        let readiness = Readiness(store: store, remote: remote, engine: engine, artifacts: artifacts)
        router.get("/ready") { _, _ in try await readiness.response() }
        JobsController(control: control, artifacts: artifacts, allowPrivateWebhooks: options.webhooks.allowPrivate)
            .addRoutes(to: router.group("/api/jobs"))
        ModelsController(registry: models).addRoutes(to: router.group("/api/models"))
        SweepsController(sweeps: sweeps, store: store, allowPrivateWebhooks: options.webhooks.allowPrivate).addRoutes(to: router.group("/api/sweeps"))
        DatasetsController(service: datasets).addRoutes(to: router.group("/api/datasets"))
        LineageController(service: LineageService(control: control, library: datasets.library, artifacts: artifacts,
                                                  dataDirectory: options.dataDirectory)).addRoutes(to: router)
        EventsController(store: store).addRoutes(to: router)
        PredictController(registry: models, server: modelServer, metrics: servingMetrics, traces: traces).addRoutes(to: router)
        router.get("/metrics") { [modelServer, servingMetrics, store, metrics, registry, spool, traces] _, _ in
            // The gauges from the store, the workers and the spool, set at each scrape.
            let gauges = try await store.jobGauges()
            let workers = try? await registry.workers()
            let text = metrics.scrape(.init(jobs: gauges, workers: workers, spool: await spool.backlog(), traces: traces?.counts))
                + servingMetrics.render(loaded: await modelServer.loaded(), jobs: Self.stateCounts(gauges))
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/api/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: OpenAPI.document)))
        }
        router.get("/api/webhooks") { [webhooks] _, _ in
            try JSONResponse.make(await webhooks.status())
        }
        router.get("/api/workers") { _, _ in
            try JSONResponse.make(["workers": try await registry.workers()])
        }
        return router
    }

    /// Jobs by state (every state, 0 when none), for the serving text's `yard_jobs`.
    static func stateCounts(_ gauges: JobGauges) -> [String: Int] {
        var jobs = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0.rawValue, 0) })
        for (key, count) in gauges.counts { jobs[key.state.rawValue, default: 0] += count }
        return jobs
    }

    /// Points the process-wide `MetricsSystem` at this server's registry, so
    /// a library that records through it shows in `/metrics` too. Once per
    /// process (`yard up`, `yard server`); later calls do nothing. Tests
    /// never call it: each `Yard` records into its own registry.
    public func bootstrapMetrics() {
        guard Self.metricsBootstrapped.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        MetricsSystem.bootstrap(metrics.factory)
    }
    private static let metricsBootstrapped = Atomic<Bool>(false)

    /// The HTTP server; `onServerRunning` gets the port it listens on (useful with port 0).
    public func buildApplication(logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol & Service
    {
        Application(router: buildRouter(), server: options.tls?.server ?? .http1(),
                    configuration: .init(address: .hostname(options.host, port: options.port), serverName: "trainyard"),
                    onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
                    logger: logger)
    }

    /// `yard up`: recovers interrupted jobs, then serves the API and runs the
    /// workers until SIGINT/SIGTERM, when engines stop at a checkpoint and
    /// their jobs go back to the queue.
    public func runUp(logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        if remote == nil {
            let requeued = try await control.recover()
            if !requeued.isEmpty { logger.info("resuming interrupted jobs: \(requeued.joined(separator: ", "))") }
        }
        bootstrapMetrics()
        let app = buildApplication(logger: logger, onServerRunning: onServerRunning)
        let services = services(app: app, logger: logger)
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// What `yard up` runs, in start order; a `ServiceGroup` shuts them down in reverse.
    public func services(app: some Service, runner: (any EngineRunner)? = nil, logger: Logger)
        -> [ServiceGroupConfiguration.ServiceConfiguration]
    {
        let workers = workers(runner: runner, logger: logger)
        let host = ProcessInfo.processInfo.hostName
        let entries = workers.map { worker in
            var info = WorkerInfo(id: worker.configuration.id, host: host, pid: getpid(), device: "auto", startedAt: Date(),
                                  leaseSeconds: queue.lease?.timeInterval)
            info.tags = options.workerTags.isEmpty ? nil : options.workerTags
            return WorkerPresence.Entry(worker: worker, info: info)
        }
        // The spool first so it stops last: stopping workers still spool their jobs' last calls.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: spool)]
        // The exporter before what records spans, so it stops after them and sends their last.
        if let traces {
            services.append(.init(service: traces))
            services.append(.init(service: JobTraces(store: store, exporter: traces, logger: Logger(label: "yard.traces"))))
        }
        if let remote {
            // Blocking reads get connections of their own: a submit's publish never waits behind them.
            let configuration = remote.redis.configuration
            // Start-up recovery runs in the consumer, after the reports that came
            // while the server was down are applied (how those jobs ended).
            let control = control
            let consumer = ReportConsumer(redis: RedisClient(configuration, name: "yard-server-reports", logger: logger), keys: remote.keys,
                                          sink: control, consumer: "server", logger: logger) {
                let queued = try await control.recover()
                if !queued.isEmpty { logger.info("queued jobs published for the workers: \(queued.joined(separator: ", "))") }
            }
            services.append(.init(service: consumer))
            if let root = options.wyoloConfigs {
                services.append(.init(service: WyoloBridge(redis: RedisClient(configuration, name: "yard-server-wyolo", logger: logger), intake: control,
                                                           topic: options.wyoloTopic, configRoot: root, keys: remote.keys, logger: logger)))
            }
        }
        // Local workers share this server's spool (`/metrics` shows it as the
        // server's); over Redis they tell how many reports wait for it.
        let outbox = workers.first?.ledger as? RedisLedger
        var backlog: (@Sendable () async -> WorkerBacklog?)?
        if let outbox { backlog = { @Sendable in WorkerBacklog(reports: outbox.waitingReports) } }
        if !entries.isEmpty { services.append(.init(service: WorkerPresence(registry: registry, entries: entries, readings: gpuReadings, backlog: backlog, logger: logger))) }
        services.append(.init(service: WorkerWatch(registry: registry, store: store, logger: Logger(label: "yard.workers"))))
        services.append(.init(service: MetricsFollower(store: store, metrics: metrics, logger: Logger(label: "yard.metrics"))))
        services.append(.init(service: EventRetentionService(store: store, retention: options.eventRetention, logger: Logger(label: "yard.events"))))
        if let schedule = options.retention {
            services.append(.init(service: RetentionService(schedule: schedule, dataDirectory: options.dataDirectory, logger: Logger(label: "yard.gc"))))
        }
        services.append(.init(service: webhooks))
        services.append(.init(service: sweeps))
        services.append(.init(service: AutoRegistration(registry: models, logger: Logger(label: "yard.registry"))))
        services.append(.init(service: ModelServerService(server: modelServer)))
        return services + workers.map { .init(service: $0) } + [.init(service: app)]
    }
}
