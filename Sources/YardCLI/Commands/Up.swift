import ArgumentParser
import Foundation
import Logging
import YardBackup
import YardDomain
import YardServer
import YardServing
import YardWebhooks

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server and local workers in one process (the embedded default).")

    @OptionGroup var serve: ServeOptions
    @Option(help: "Number of local workers (one per GPU).") var workers = 1

    func validate() throws {
        try serve.validate()
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be between 1 and 64") }
    }

    func run() async throws {
        try await reporting {
            var options = serve.options
            options.workers = workers
            try await serve.run(options)
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve registered models over HTTP (/api/predict/NAME) with no workers; `yard up` and `yard server` serve the same routes.")

    @OptionGroup var serve: ServeOptions

    func validate() throws { try serve.validate() }

    func run() async throws {
        try await reporting {
            var options = serve.options
            options.workers = 0
            try await serve.run(options)
        }
    }
}

struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server for workers on other machines (`yard worker --redis URL`), sharing the queue through Redis.")

    @OptionGroup var serve: ServeOptions
    @Option(help: "Redis URL: redis://[[user]:password@]host[:port][/db] (the password may come from $YARD_REDIS_URL instead).")
    var redis: String?
    @Option(help: "Local workers beside the server (default none: the workers run elsewhere).") var workers = 0
    @Option(help: "Seconds a local worker's claim lives without a heartbeat.") var lease = 60
    @Option(name: .customLong("wyolo-configs"),
            help: "Take wyolo clients' job messages (XADD or RPUSH on --wyolo-topic); their config_path must lie in this folder.")
    var wyoloConfigs: String?
    @Option(name: .customLong("wyolo-topic"), help: "The Redis key wyolo clients send job messages to (their redis.TOPIC).")
    var wyoloTopic = "training_queue"

    var redisURL: String? { redis ?? environmentValue("YARD_REDIS_URL") }

    func validate() throws {
        try serve.validate()
        guard (0...64).contains(workers) else { throw ValidationError("--workers must be between 0 and 64") }
        guard (3...86400).contains(lease) else { throw ValidationError("--lease must be between 3 and 86400 seconds") }
        guard redisURL != nil else { throw ValidationError("--redis is required (or set YARD_REDIS_URL): the queue the workers share") }
        if let wyoloConfigs {
            var folder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: wyoloConfigs, isDirectory: &folder), folder.boolValue else {
                throw ValidationError("--wyolo-configs: \(wyoloConfigs) is not a folder")
            }
        }
        guard !wyoloTopic.isEmpty, !wyoloTopic.contains(" ") else { throw ValidationError("--wyolo-topic must be a Redis key without spaces") }
    }

    func run() async throws {
        try await reporting {
            var options = serve.options
            options.workers = workers
            options.redisURL = redisURL
            options.lease = .seconds(lease)
            options.wyoloConfigs = wyoloConfigs
            options.wyoloTopic = wyoloTopic
            try await serve.run(options)
        }
    }
}

/// `--sync`: when the store's commits are on the disk (YardDatabase.Sync).
enum SyncSetting: String, CaseIterable, ExpressibleByArgument, Sendable {
    case normal, full
}

/// What `yard up` and `yard server` share: where to listen, the data dir,
/// the engine, secrets and logging.
struct ServeOptions: ParsableArguments {
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8787
    @Option(name: .customLong("data-dir"), help: "Folder for the database, runs and artifacts.") var dataDir = ".yard"
    @Option(help: "Python interpreter with ultralytics (default: $YARD_PYTHON, else the setup's venv).") var python: String?
    @Option(name: .customLong("stop-grace"), help: "Seconds a stopping engine may take before it is killed.") var stopGrace = 120
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"
    @Option(name: .customLong("log-format"), help: "text, or json: one object a line (time, level, job_id, worker, request_id, label, message).")
    var logFormat: LogFormat = .text
    @Option(name: .customLong("secret-key-file"),
            help: "Key file that seals job secrets at rest (default DATA/secret.key; YARD_SECRET_KEY wins).") var secretKeyFile: String?
    @Option(name: .customLong("dataset-root"),
            help: "A folder `yard datasets add` may read from (repeatable; required when YARD_TOKEN is set).") var datasetRoots: [String] = []
    @Flag(name: .customLong("allow-dataset-symlinks"),
          help: "Let datasets hold symlinks to files outside their folder (refused by default).") var allowDatasetSymlinks = false
    @Flag(name: .customLong("secure-cookies"),
          help: "Mark the dashboard's session cookie Secure: set when users reach the server over HTTPS (a proxy in front).")
    var secureCookies = false
    @Option(name: .customLong("max-dataset-bytes"),
            help: "Most bytes a ZIP added as a dataset may unpack to, counted as they are written (e.g. 10GB, 500MB, 1000000).")
    var maxDatasetBytes = "10GB"
    @Flag(name: .customLong("no-warm-engine"),
          help: "Start each job's engine when the job starts, not ahead of need with its imports done (also YARD_WARM_ENGINE=0).")
    var noWarmEngine = false
    @Option(name: .customLong("predictors"), help: "Predictor processes per served model version (default: one per core, at most 4).")
    var predictors: Int?
    @Option(name: .customLong("predictor-threads"), help: "Torch threads per predictor (default: the cores shared among them).")
    var predictorThreads: Int?
    @Option(name: .customLong("serve-memory-mb"), help: "Predictor memory beyond which least recently used versions are unloaded.")
    var serveMemory = 4096
    @Option(name: .customLong("max-image-mb"), help: "Largest image /api/predict takes.") var maxImageMB = 20
    @Option(name: .customLong("max-image-side"), help: "Largest image side /api/predict takes, in pixels.") var maxImageSide = 8000
    @Option(name: .customLong("max-images"), help: "Most images in one /api/predict request.") var maxImages = 16
    @Option(name: .customLong("max-request-megapixels"), help: "Most pixels of all of one /api/predict request's images together, in millions.")
    var maxRequestMegapixels = 64
    @Option(name: .customLong("serve-batch"),
            help: "Dynamic batching: most images one predictor call gathers from waiting requests (default 8 with a GPU, 1 = off on CPU).")
    var serveBatch: Int?
    @Option(name: .customLong("serve-batch-wait-ms"), help: "How long a batch that is not full waits for more requests (default 5).")
    var serveBatchWait: Int?
    @Option(name: .customLong("event-retention-days"),
            help: "Days jobs' epoch, progress, log and artifact events stay in the event log (0: for ever; state and other events always stay).")
    var eventRetentionDays = 30
    @Option(name: .customLong("gc-at"), help: "Run `yard gc` in the server once a day at this local time (HH:MM, e.g. 03:00); off by default.")
    var gcAt: String?
    @Option(name: .customLong("gc-older-than"), help: "With --gc-at: only jobs finished longer ago than this (30d, 12h).") var gcOlderThan = "30d"
    @Option(name: .customLong("gc-keep-last"), help: "With --gc-at: keep the folders of the N most recently finished jobs.") var gcKeepLast = 0
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain: serve HTTPS directly (with --tls-key).") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert.") var tlsKey: String?
    @Option(name: .customLong("sync"),
            help: "normal: a commit survives the server being killed, a power cut may lose the last ones; full: every commit is fsynced (survives a power cut; slower on most disks).")
    var sync: SyncSetting = .normal
    @Option(name: .customLong("webhook"),
            help: "Send webhooks to this URL (repeatable): 'URL', 'URL;events=job.failed,sweep.finished', ';format=slack'. Signed with $YARD_WEBHOOK_SECRET or --webhook-secret-file.")
    var webhooks: [String] = []
    @Option(name: .customLong("webhook-secret-file"), help: "File whose first line is the secret server-wide webhooks are signed with (YARD_WEBHOOK_SECRET wins).")
    var webhookSecretFile: String?
    @Flag(name: .customLong("allow-private-webhooks"),
          help: "Let webhooks (--webhook and notify:) reach loopback, link-local and private addresses (refused by default: request forgery).")
    var allowPrivateWebhooks = false
    @Option(name: .customLong("fair-share"),
            help: "Among waiting jobs of one priority, the next goes to the user (or experiment) with the least GPU time in the last 24 h: user or experiment.")
    var fairShare: String = FairShare.user.rawValue
    @Option(name: .customLong("priority-aging"),
            help: "Minutes a waiting job waits to gain one priority level (no starvation); 0: never.")
    var priorityAging: Double = 60
    @Option(name: .customLong("max-running"),
            help: "At most this many running jobs per user; more of that user's jobs wait (yard show says why). Default: no limit.")
    var maxRunning: Int?
    @Option(name: .customLong("worker-tags"),
            help: "Tags the local workers offer, comma-separated (a100,80gb): they take only jobs whose resources.tags are all among them.")
    var workerTags: String = ""

    func validate() throws {
        guard FairShare(rawValue: fairShare) != nil else {
            throw ValidationError("--fair-share: \"\(fairShare.prefix(40))\" is not user or experiment")
        }
        guard priorityAging.isFinite, (0...525_600).contains(priorityAging) else {
            throw ValidationError("--priority-aging must be between 0 (never) and 525600 minutes")
        }
        if let maxRunning { guard (1...10_000).contains(maxRunning) else { throw ValidationError("--max-running must be between 1 and 10000") } }
        do { _ = try WorkerTags.parse(workerTags, field: "--worker-tags") } catch { throw ValidationError(error.message) }
        _ = try webhookSettings()
        do { _ = try TraceSettings.fromEnvironment() } catch { throw ValidationError(error.message) }
        if let predictors { guard (1...64).contains(predictors) else { throw ValidationError("--predictors must be between 1 and 64") } }
        if let predictorThreads { guard (1...256).contains(predictorThreads) else { throw ValidationError("--predictor-threads must be between 1 and 256") } }
        guard serveMemory >= 256 else { throw ValidationError("--serve-memory-mb must be at least 256") }
        guard (1...1024).contains(maxImageMB) else { throw ValidationError("--max-image-mb must be between 1 and 1024") }
        guard (32...100_000).contains(maxImageSide) else { throw ValidationError("--max-image-side must be between 32 and 100000") }
        guard (1...1000).contains(maxImages) else { throw ValidationError("--max-images must be between 1 and 1000") }
        guard (1...10_000).contains(maxRequestMegapixels) else { throw ValidationError("--max-request-megapixels must be between 1 and 10000") }
        if let serveBatch { guard (1...256).contains(serveBatch) else { throw ValidationError("--serve-batch must be between 1 and 256") } }
        if let serveBatchWait { guard (0...10_000).contains(serveBatchWait) else { throw ValidationError("--serve-batch-wait-ms must be between 0 and 10000") } }
        guard (0...36_500).contains(eventRetentionDays) else { throw ValidationError("--event-retention-days must be between 0 (keep for ever) and 36500") }
        do { _ = try retentionSchedule() } catch { throw ValidationError(error.message) }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 (any free port) and 65535") }
        guard stopGrace > 0 else { throw ValidationError("--stop-grace must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level \(logLevel)") }
        guard let bytes = Self.byteCount(maxDatasetBytes) else {
            throw ValidationError("--max-dataset-bytes: \"\(maxDatasetBytes.prefix(40))\" is not a size; give bytes, or a number with kB, MB or GB (e.g. 10GB)")
        }
        guard bytes >= 1 else { throw ValidationError("--max-dataset-bytes must be at least 1 byte (the default is 10GB)") }
    }

    /// "10GB", "500 MB", "64kB" or plain bytes (decimal units, as `df -H` and disk makers count).
    static func byteCount(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [("GB", 1e9), ("G", 1e9), ("MB", 1e6), ("M", 1e6), ("KB", 1e3), ("K", 1e3), ("B", 1)]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            guard let number = Double(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), number.isFinite, number >= 0,
                  number * scale < 9e18 else { return nil }
            return Int64(number * scale)
        }
        return Int64(trimmed)
    }

    var options: YardOptions {
        var options = YardOptions()
        options.host = host
        options.port = port
        options.dataDirectory = dataDir
        options.python = python
        options.token = environmentValue("YARD_TOKEN")
        options.stopGrace = .seconds(stopGrace)
        options.allowDatasetSymlinks = allowDatasetSymlinks
        options.secureCookies = secureCookies
        options.datasetRoots = datasetRoots.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        options.maxDatasetBytes = Self.byteCount(maxDatasetBytes) ?? options.maxDatasetBytes
        options.secretKeyFile = secretKeyFile
        options.scheduling = SchedulingPolicy(fairShare: FairShare(rawValue: fairShare) ?? .user,
                                              agingSeconds: priorityAging == 0 ? nil : priorityAging * 60,
                                              maxRunningPerUser: maxRunning)
        options.workerTags = (try? WorkerTags.parse(workerTags, field: "--worker-tags")) ?? []
        options.warmEngine = WarmEngineSetting.enabled(flag: noWarmEngine)
        options.eventRetention = EventRetention(days: eventRetentionDays == 0 ? nil : eventRetentionDays)
        options.sync = sync == .full ? .full : .normal
        options.retention = try? retentionSchedule()
        var serving = ServingOptions()
        if let predictors {
            serving.processes = predictors
            serving.threads = max(1, ProcessInfo.processInfo.activeProcessorCount / predictors)
        }
        if let predictorThreads { serving.threads = predictorThreads }
        serving.memoryLimit = Int64(serveMemory) << 20
        serving.limits.maxImageBytes = maxImageMB << 20
        serving.limits.maxSide = maxImageSide
        serving.limits.maxImages = maxImages
        serving.limits.maxPixels = maxRequestMegapixels * 1_000_000
        if serveBatch != nil || (serveBatchWait != nil && serving.batching != nil) {
            let images = serveBatch ?? serving.batching?.maxImages ?? 8
            let wait = serveBatchWait.map { Duration.milliseconds($0) } ?? serving.batching?.maxWait ?? .milliseconds(5)
            serving.batching = images > 1 ? Batching(maxImages: images, maxWait: wait) : nil
        }
        options.serving = serving
        options.webhooks = (try? webhookSettings()) ?? options.webhooks
        options.tracing = try? TraceSettings.fromEnvironment()
        return options
    }

    /// `--gc-at` with its limits; nil when off.
    func retentionSchedule() throws(YardError) -> RetentionSchedule? {
        guard let gcAt else {
            if gcOlderThan != "30d" || gcKeepLast != 0 { throw YardError.invalid("--gc-at", "--gc-older-than and --gc-keep-last set the server's nightly gc: give --gc-at HH:MM too (or run `yard gc` yourself)") }
            return nil
        }
        var schedule = try RetentionSchedule.parse(gcAt)
        do { schedule.olderThan = try RetentionOptions.parseAge(gcOlderThan) } catch {
            throw YardError.invalid("--gc-older-than", "--gc-older-than must be a number with d, h, m or s (e.g. 30d)")
        }
        guard gcKeepLast >= 0 else { throw YardError.invalid("--gc-keep-last", "--gc-keep-last must be 0 or more") }
        schedule.keepLast = gcKeepLast
        return schedule
    }

    /// The webhook flags checked: each `--webhook` parsed, the secret read
    /// (`YARD_WEBHOOK_SECRET`, else `--webhook-secret-file`), and
    /// `YARD_WEBHOOK_RETRY_BASE_MS` (tests) for the first retry's wait.
    func webhookSettings() throws -> WebhookSettings {
        var settings = WebhookSettings()
        settings.allowPrivate = allowPrivateWebhooks
        var secret = environmentValue("YARD_WEBHOOK_SECRET")
        if secret == nil, let path = webhookSecretFile {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                  let line = text.split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }), !line.isEmpty else {
                throw ValidationError("--webhook-secret-file: cannot read a secret from \(path); put the secret on its first line")
            }
            secret = line
        }
        if let secret, secret.count < 8 { throw ValidationError("YARD_WEBHOOK_SECRET / --webhook-secret-file: the secret must be at least 8 characters") }
        do {
            settings.targets = try webhooks.map { spec throws(YardError) in try WebhookTarget.server(spec, secret: secret, allowPrivate: allowPrivateWebhooks) }
        } catch { throw ValidationError(error.message) }
        if let text = environmentValue("YARD_WEBHOOK_RETRY_BASE_MS"), let ms = Int(text), ms > 0 { settings.backoff.base = Double(ms) / 1000 }
        return settings
    }

    var logger: Logger {
        var logger = Logger(label: "yard")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return logger
    }

    func run(_ given: YardOptions) async throws {
        logFormat.bootstrap()  // before the first logger
        var options = given
        switch (tlsCert, tlsKey) {
        case (let certificate?, let key?): options.tls = try ServerTLS(certificate: certificate, key: key)
        case (nil, nil): break
        case (nil, _): throw YardError.invalid("--tls-cert", "--tls-key needs --tls-cert: give the certificate chain the key belongs to")
        case (_, nil): throw YardError.invalid("--tls-key", "--tls-cert needs --tls-key: give the certificate's private key")
        }
        let yard = try await Yard.embedded(options)
        let data = yard.options.dataDirectory
        let auth = options.token == nil ? "no auth (set YARD_TOKEN to require a token)" : "token auth"
        let queue = yard.remote.map { "workers over Redis at \($0.redis.configuration)" } ?? "embedded queue"
        let logger = self.logger
        let scheme = options.tls == nil ? "http" : "https", workers = options.workers
        try await yard.runUp(logger: logger) { [logFormat] port in
            let banner = "trainyard serving \(scheme)://\(host):\(port) with \(workers) local worker(s), \(queue), data in \(data), \(auth)"
            if logFormat == .json { logger.notice("\(banner)") } else { Output.line(banner) }
        }
    }
}

/// Whether workers keep a warm engine: on unless `--no-warm-engine` or `YARD_WARM_ENGINE=0`.
enum WarmEngineSetting {
    static func enabled(flag noWarmEngine: Bool) -> Bool {
        !noWarmEngine && !["0", "false", "off", "no"].contains(environmentValue("YARD_WARM_ENGINE")?.lowercased() ?? "")
    }
}
