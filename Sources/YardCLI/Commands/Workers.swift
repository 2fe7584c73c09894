import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import YardDomain
import YardQueue
import YardWorker

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run one worker that takes jobs from a `yard server --redis` queue (one per GPU).")

    @Option(help: "Redis URL of the server's queue: redis://[[user]:password@]host[:port][/db] (or $YARD_REDIS_URL).")
    var redis: String?
    @Option(help: "Pin the worker to this GPU (CUDA_VISIBLE_DEVICES, device 0 for its jobs); checked before any job is taken.")
    var gpu: Int?
    @Option(help: "Seconds the worker's claim on a job lives without a heartbeat; after that another worker takes the job over.")
    var lease = 60
    @Option(help: ArgumentHelp(
        "Tags this worker offers, comma-separated (a100,80gb): it takes only jobs whose resources.tags are all among them.",
        discussion: "A job's resources.gpu_memory_gb must also fit the free memory nvidia-smi last reported for this worker's GPU (its --gpu, else the freest one); without GPU stats it takes only jobs that ask for no GPU memory."))
    var tags: String = ""
    @Option(name: .customLong("data-dir"), help: "This worker's own folder: runs, dataset cache, tracking spool.") var dataDir = ".yard-worker"
    @Option(help: "Python interpreter with ultralytics (default: $YARD_PYTHON, else the setup's venv).") var python: String?
    @Option(name: .customLong("stop-grace"), help: "Seconds a stopping engine may take before it is killed.") var stopGrace = 120
    @Option(name: .customLong("secret-key-file"),
            help: "A copy of the server's DATA/secret.key, to open job secrets ($YARD_SECRET_KEY wins).") var secretKeyFile: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"
    @Option(name: .customLong("log-format"), help: "text, or json: one object a line (time, level, job_id, worker, label, message).")
    var logFormat: LogFormat = .text
    @Flag(name: .customLong("allow-dataset-symlinks"),
          help: "Let datasets hold symlinks to files outside their folder (refused by default).") var allowDatasetSymlinks = false
    @Flag(name: .customLong("no-warm-engine"),
          help: "Start each job's engine when the job starts, not ahead of need with its imports done (also YARD_WARM_ENGINE=0).")
    var noWarmEngine = false

    var redisURL: String? { redis ?? environmentValue("YARD_REDIS_URL") }

    func validate() throws {
        guard redisURL != nil else { throw ValidationError("--redis is required (or set YARD_REDIS_URL): the server's queue") }
        if let gpu, !(0...255).contains(gpu) { throw ValidationError("--gpu must be a GPU index between 0 and 255") }
        guard (3...86400).contains(lease) else { throw ValidationError("--lease must be between 3 and 86400 seconds") }
        guard stopGrace > 0 else { throw ValidationError("--stop-grace must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level \(logLevel)") }
        do { _ = try WorkerTags.parse(tags) } catch { throw ValidationError(error.message) }
    }

    func run() async throws {
        logFormat.bootstrap()  // before the first logger
        try await reporting {
            var options = WorkerNodeOptions(redisURL: redisURL ?? "")
            options.gpu = gpu
            options.tags = (try? WorkerTags.parse(tags)) ?? []
            options.lease = .seconds(lease)
            options.dataDirectory = dataDir
            options.python = python
            options.stopGrace = .seconds(stopGrace)
            options.secretKeyFile = secretKeyFile
            options.allowDatasetSymlinks = allowDatasetSymlinks
            options.warmEngine = WarmEngineSetting.enabled(flag: noWarmEngine)
            var logger = Logger(label: "yard.worker")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            let node = try await WorkerNode.start(options, logger: logger)
            logger[metadataKey: "worker"] = "\(node.info.id)"
            let banner = "trainyard worker \(node.info.id) on \(node.info.device), queue at \(node.redis.configuration), lease \(lease)s\(node.options.tags.isEmpty ? "" : ", tags \(node.options.tags.joined(separator: ","))"), data in \(node.options.dataDirectory), \(node.keyCheck)"
            if logFormat == .json { logger.notice("\(banner)") } else { Output.line(banner) }
            let group = ServiceGroup(configuration: .init(services: node.services(logger: logger), gracefulShutdownSignals: [.sigterm, .sigint],
                                                          logger: logger))
            try await group.run()
        }
    }
}

struct Workers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the workers: status, device, tags, job, GPU use, last heartbeat.")

    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var server: ServerOptions

    struct List: Codable { var workers: [WorkerInfo] }

    func run() async throws {
        try await reporting {
            let list = try await server.client.get("/api/workers", as: List.self)
            if json { return try Output.json(list) }
            if list.workers.isEmpty { return Output.line("no workers; start one with `yard worker --redis URL`") }
            let now = Date()
            let rows = list.workers.map { worker -> [String] in
                let gpu = worker.gpus.first.map { gpu in
                    let memory = gpu.memoryUsedMiB.map { used in "\(used)/\(gpu.memoryTotalMiB.map(String.init) ?? "?") MiB" } ?? "-"
                    return "\(gpu.utilizationPercent.map { "\($0)%" } ?? "-") \(memory) \(gpu.temperatureC.map { "\($0)C" } ?? "")"
                } ?? (worker.gpuError.map { "error: \($0.prefix(40))" } ?? "-")
                let seen = Output.duration(max(0, now.timeIntervalSince(worker.heartbeatAt))) + " ago"
                let tags = (worker.tags ?? []).isEmpty ? "-" : Output.printable((worker.tags ?? []).joined(separator: ","))
                return [worker.id, worker.status.rawValue, worker.device, tags, worker.job ?? "-", gpu, seen]
            }
            Table.print(header: ["ID", "STATUS", "DEVICE", "TAGS", "JOB", "GPU", "HEARTBEAT"], rows: rows)
        }
    }
}
