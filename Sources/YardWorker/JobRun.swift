import Foundation
import Logging
import Synchronization
import YardArtifacts
import YardDatasets
import YardDomain
import YardQueue
import YardEngine
import YardStore
import YardTracker

/// One attempt at one job: start (or resume) the engine, record what it
/// reports, honour stop requests, and settle the job's state at the end.
struct JobRun {
    let worker: Worker
    let jobID: String
    let shutdown: ShutdownFlag
    /// Set when the worker's claim on the job was lost (another worker took
    /// it over after the lease): the engine is killed and nothing more of
    /// this attempt is recorded.
    var lost = ShutdownFlag()

    private var ledger: any JobLedger { worker.ledger }
    private var runDirectory: String { "\(worker.configuration.dataDirectory)/runs/\(jobID)" }
    private var jobDirectory: String { "\(worker.configuration.dataDirectory)/jobs/\(jobID)" }

    /// Runs one attempt. Whatever goes wrong, the job ends: failed with the
    /// reason (or back in the queue when the worker is shutting down), its
    /// claim released. If even that cannot be written (a full disk), the
    /// worker keeps the settlement and retries it before it claims more work.
    func execute() async {
        do {
            try await attempt()
        } catch {
            let reason = Redaction.redactText("\(error)")
            worker.logger.error("job \(jobID): the attempt broke off: \(reason)")
            let settlement = shutdown.isSet
                ? Settlement(state: .queued, message: "interrupted by shutdown (\(reason.prefix(200))); will resume from its last checkpoint")
                : Settlement(state: .failed, message: reason)
            await settle(settlement)
        }
    }

    private func attempt() async throws {
        guard let job = try await ledger.job(jobID) else {
            try await worker.completeClaim(jobID)
            return
        }
        if job.state == .stopping {
            try await ledger.move(jobID, to: .stopped, message: "stopped before it started")
            try await worker.completeClaim(jobID)
            return
        }
        guard job.state == .queued else {
            worker.logger.warning("job \(jobID) was in the queue while \(job.state.rawValue); dropping the queue entry")
            try await worker.completeClaim(jobID)
            return
        }

        let checkpoint = runDirectory + "/weights/last.pt"
        let workerID = worker.configuration.id
        let running = try await ledger.move(jobID, to: .running, message: "started",
                                            change: JobChange(attemptStarted: .init(worker: workerID, time: Date())))

        var runID: String?
        for tracker in worker.trackers {
            if let id = await tracked({ try await tracker.startRun(running) }) ?? nil, runID == nil { runID = id }
        }
        if let runID { try await ledger.update(jobID, JobChange(runID: runID)) }

        // Storage, an S3 dataset and a checkpoint kept remotely come first: a
        // problem with any of them fails the job with its reason.
        let secrets = try await ledger.secrets(of: jobID)
        let full = Redaction.restore(running.config, secrets: secrets)
        let masker = SecretMasker(secrets: secrets)
        var data = running.config["train"]?["data"]?.stringValue ?? ""
        var known = running.datasetHash
        let storage: JobStorage
        var resume = false
        var dataset: DatasetFiles?
        var startingWeights: String?
        do {
            storage = try await JobStorage.resolve(config: full, fallback: worker.artifacts)
            if let parent = running.provenance?.parent {
                startingWeights = try await ParentWeights(parent: parent, dataDirectory: worker.configuration.dataDirectory,
                                                          artifacts: worker.artifacts).fetch(into: jobDirectory)
                try await ledger.appendLog(jobID: jobID, lines: ["[trainyard] starting from \(parent.name) version \(parent.version) (sha256 \(parent.sha256.prefix(12)) checked)"])
            }
            if DatasetReference.isReference(data) {
                // Pinned at submit (`dataset:NAME@ID`): the stored version, checked unedited.
                let reference = try DatasetReference.parse(data)
                guard let id = reference.version, id.hasSuffix(".dir") else {
                    throw YardError.invalid("train.data", "\(data) is not pinned to a version; submit it through the server")
                }
                let library = DatasetLibrary(dataDirectory: worker.configuration.dataDirectory)
                if !library.exists(id), storage.isRemote {
                    // A worker on another machine: the server copied the version to the job's bucket.
                    try await library.pull(id, from: storage.artifacts)
                    try await ledger.appendLog(jobID: jobID, lines: ["[trainyard] dataset \(reference.name) version \(id) fetched from the bucket"])
                }
                try await offloadThrowing { () throws(YardError) in try library.verify(id, reference: reference.name + "@" + id) }
                data = library.dataPath(id)
                known = id
                try await ledger.appendEvent(jobID: jobID, type: "dataset", payload: [
                    "source": .string(reference.description), "path": .string(data), "version": .string(id),
                ])
                try await ledger.appendLog(jobID: jobID, lines: ["[trainyard] dataset \(reference.name) version \(id)"])
            } else if data.hasPrefix("s3://") {
                let cache = full["minio"]?["cache"]?.boolValue ?? true
                let (pulled, hash) = try await storage.pullDataset(data, dataDirectory: worker.configuration.dataDirectory,
                                                                  jobDirectory: jobDirectory, cache: cache)
                try await ledger.appendEvent(jobID: jobID, type: "dataset", payload: [
                    "source": .string(data), "path": .string(pulled.data), "objects": .int(pulled.objects),
                    "downloaded": .int(pulled.downloaded), "bytes": .int(Int(pulled.bytes)), "cache": .bool(cache),
                ])
                try await ledger.appendLog(jobID: jobID, lines: ["[trainyard] dataset \(data): \(pulled.objects) files, \(pulled.downloaded) downloaded (\(pulled.bytes) bytes), \(pulled.objects - pulled.downloaded) from the cache"])
                data = pulled.data
                known = hash
            }
            if running.attempts > 1 {
                // Cut off while it was written (the attempt was killed then): useless, and
                // Ultralytics would refuse it as "not found"; a remote copy may be whole.
                let cutOff = FileManager.default.fileExists(atPath: checkpoint) && !Checkpoint.isComplete(checkpoint)
                if cutOff {
                    try? FileManager.default.removeItem(atPath: checkpoint)
                    try await ledger.appendLog(jobID: jobID, lines: ["[trainyard] attempt \(running.attempts): the checkpoint in this worker's run folder was cut off while it was written (the attempt before was killed then); it is not used"])
                }
                if !FileManager.default.fileExists(atPath: checkpoint), storage.isRemote,
                   try await storage.artifacts.exists(key: "\(jobID)/weights/last.pt") {
                    // results.csv first: Ultralytics appends the resumed epochs to it.
                    if try await storage.artifacts.exists(key: "\(jobID)/results.csv") {
                        try await storage.artifacts.get(key: "\(jobID)/results.csv", to: runDirectory + "/results.csv")
                    }
                    try await storage.artifacts.get(key: "\(jobID)/weights/last.pt", to: checkpoint)
                }
                resume = FileManager.default.fileExists(atPath: checkpoint)
                if !resume {
                    let why = cutOff && storage.isRemote ? "the run folder's was cut off, and the artifact store has none"
                        : cutOff ? "the run folder's was cut off, and the job keeps no artifacts remotely"
                        : storage.isRemote ? "neither in this worker's run folder nor in the artifact store"
                        : "not in this worker's run folder, and the job keeps no artifacts remotely (set minio: to resume on another machine)"
                    try await ledger.appendLog(jobID: jobID, lines: ["[trainyard] attempt \(running.attempts): no checkpoint of an earlier attempt (\(why)); training restarts from epoch 0"])
                }
            }
            let allow = worker.configuration.allowExternalSymlinks, local = data
            dataset = try await offloadThrowing { () throws(YardError) in try DatasetFiles.scan(data: local, allowExternalSymlinks: allow) }
        } catch {
            await settle(Settlement(state: .failed, message: masker.mask("\(error)")))
            return
        }
        if !resume { try? FileManager.default.removeItem(atPath: runDirectory) }
        if resume { try await ledger.appendLog(jobID: jobID, lines: ["[trainyard] resuming from \(checkpoint)"]) }

        let listed = dataset
        let cachePath = worker.configuration.dataDirectory + "/datasets/hash-cache.txt"
        async let pendingHash = known != nil ? known : await offload { listed.map { DatasetHash.compute($0, cache: HashCache(path: cachePath)) } }
        // A CUDA out-of-memory failure is tried once more with half the batch
        // (unless `oom_retry: false`), as a new attempt of the same claim.
        var batches = OutOfMemory.batch(full["train"]?["batch"], override: worker.configuration.trainOverrides["batch"]).map { [$0] } ?? []
        var hashed: String??
        while true {
            let process: any EngineProcess
            do {
                process = try await worker.runner.start(EngineRequest(jobID: jobID, spec: spec(for: running, full: full, data: data, model: startingWeights,
                                                                                                 resume: resume ? checkpoint : nil,
                                                                                                batch: batches.count > 1 ? batches.last : nil),
                                                                      workDirectory: jobDirectory))
            } catch {
                await settle(Settlement(state: .failed, message: masker.mask("\(error)")))
                return
            }

            // Hashed while the engine imports torch; known before its first event.
            if hashed == nil { hashed = .some(await pendingHash) }
            let datasetHash = hashed ?? nil
            let outcome = RunOutcome()
            let log = LogSink(ledger: ledger, jobID: jobID, file: jobDirectory + "/train.log", logger: worker.logger, masker: masker)
            let shutdownToken = shutdown.whenSet {
                outcome.stop(.shutdown)
                process.requestStop()
            }
            defer { shutdown.cancel(shutdownToken) }
            let lostToken = lost.whenSet {
                outcome.stop(.lostClaim)
                process.kill()
            }
            defer { lost.cancel(lostToken) }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await watchForStop(process, outcome: outcome) }
                for await output in process.output {
                    // Another attempt holds the job: nothing more of this one is recorded or kept.
                    if lost.isSet { continue }
                    switch output {
                    case .log(let line):
                        await log.append(line)
                    case .protocolError(let line):
                        await log.append("[trainyard] engine wrote a line that is not an event: \(line.prefix(200))")
                    case .event(let event):
                        do {
                            try await handle(masked(event, masker), outcome: outcome, log: log, storage: storage,
                                             datasetHash: event.kind == .started ? datasetHash : nil)
                        } catch {
                            // What is not recorded must not be reported: the attempt ends failed
                            // (the checkpoint stays, so `yard resume` continues it).
                            let reason = masker.mask("recording the run failed at its \(event.kind.rawValue) event: \(error)")
                            worker.logger.error("job \(jobID): \(reason)")
                            let first = outcome.failure.withLock { failure -> Bool in
                                guard failure == nil else { return false }
                                failure = reason
                                return true
                            }
                            if first {
                                outcome.stop(.failure)
                                process.requestStop()
                            }
                        }
                    }
                }
                group.cancelAll()
            }
            let code = await process.waitForExit()
            await log.close()
            if !lost.isSet { await storeLog(log, in: storage) }
            let settlement = await settlement(exitCode: code, outcome: outcome, log: log)
            // Not after a stop (asked, or the service going down): that wins.
            let stopAsked = outcome.stopReason.withLock { $0 } != nil
            if !lost.isSet, !stopAsked, settlement.state == .failed, let failure = outcome.failure.withLock({ $0 }), OutOfMemory.matches(failure) {
                if let smaller = OutOfMemory.retryBatch(tried: batches, allowed: full["oom_retry"]?.boolValue ?? true) {
                    let reason = "out of GPU memory at batch \(batches.last!); retrying once with batch \(smaller)"
                    try await ledger.appendLog(jobID: jobID, lines: ["[trainyard] \(reason) (a new attempt, from epoch 0)"])
                    try await ledger.appendEvent(jobID: jobID, type: "retry", payload: [
                        "reason": .string(reason), "error": .string(masker.mask(String(failure.prefix(500)))),
                        "batch": .int(smaller), "previous_batch": .int(batches.last!),
                    ])
                    try await ledger.update(jobID, JobChange(attemptStarted: .init(worker: workerID, time: Date())))
                    batches.append(smaller)
                    resume = false
                    try? FileManager.default.removeItem(atPath: runDirectory)
                    continue
                }
                await settle(Settlement(state: .failed, message: OutOfMemory.finalMessage(tried: batches, allowed: full["oom_retry"]?.boolValue ?? true,
                                                                                           error: failure)))
                return
            }
            await settle(settlement)
            return
        }
    }

    /// The spec the engine reads: from the config with its secrets (`full`), the worker's overrides
    /// applied, and the run folder fixed by Trainyard.
    private func spec(for job: Job, full: JSONValue, data: String, model: String?, resume: String?, batch: Int? = nil) -> JSONValue {
        var train = full["train"]?.objectValue ?? [:]
        train["data"] = .string(data)
        for (key, value) in worker.configuration.trainOverrides { train[key] = value }
        // An out-of-memory retry's smaller batch.
        if let batch { train["batch"] = .int(batch) }
        var spec: [String: JSONValue] = [
            "job_id": .string(jobID),
            "model": model.map(JSONValue.string) ?? full["model"] ?? .string(job.model),
            "type": .string(job.type.rawValue),
            "train": .object(train),
            "project": .string(worker.configuration.dataDirectory + "/runs"),
            "name": .string(jobID),
            "config_dir": .string(worker.configuration.dataDirectory + "/ultralytics"),
        ]
        if let val = full["val"] { spec["val"] = val }
        if let evaluate = full["evaluate_test"] { spec["evaluate_test"] = evaluate }
        if let resume { spec["resume"] = .string(resume) }
        return .object(spec)
    }
    /// A stop asked for the job (the ledger says when) is passed to the
    /// engine; once any stop was signalled (asked, a shutdown, a failed
    /// write), the engine has `stopGrace` to end before it is killed.
    private func watchForStop(_ process: any EngineProcess, outcome: RunOutcome) async {
        let tick = Duration.milliseconds(500)
        let clock = worker.configuration.clock
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                guard let job = await ledger.stopRequested(jobID, tick: tick, clock: clock) else { return }
                outcome.stop(.user)
                // A pruned trial is never resumed: no final validation or checkpoint to wait for.
                if job.pruning != nil { process.abandon() } else { process.requestStop() }
            }
            group.addTask {
                // The grace period, on the worker's clock, from the first stop signalled.
                await outcome.stopSignalled.wait()
                guard !Task.isCancelled else { return }
                do { try await clock.sleep(for: worker.configuration.stopGrace) } catch { return }
                worker.logger.warning("job \(jobID): engine did not stop within the grace period; killing it")
                outcome.killed.withLock { $0 = true }
                process.kill()
            }
            await group.waitForAll()
        }
    }

    /// Records one engine event; a store write that fails is thrown (the
    /// caller ends the attempt), a tracker or upload failure is only noted.
    private func handle(_ event: EngineEvent, outcome: RunOutcome, log: LogSink, storage: JobStorage, datasetHash: String?) async throws {
        if event.kind == .log, let line = event.line { await log.append("[engine] " + line) }
        try await ledger.appendEvent(jobID: jobID, type: event.kind.rawValue, payload: .object(event.payload))
        switch event.kind {
        case .started:
            let job = try await ledger.update(jobID, JobChange(
                device: event.payload["device"]?.stringValue, saveDir: event.payload["save_dir"]?.stringValue,
                datasetHash: datasetHash, epochs: event.epochs,
                versions: event.payload["versions"]?.objectValue?.compactMapValues(\.stringValue),
                host: event.payload["host"]?.stringValue))
            for tracker in worker.trackers { await tracked { try await tracker.engineStarted(job) } }
        case .epoch:
            guard let epoch = event.epoch else { return }
            let record = EpochRecord(jobID: jobID, epoch: epoch, metrics: event.numbers, seconds: event.seconds ?? 0)
            let job = try await ledger.update(jobID, JobChange(epoch: epoch, epochs: event.epochs))
            for tracker in worker.trackers { await tracked { try await tracker.logEpoch(job, record) } }
            // A remote store keeps the resumable checkpoint too, so another
            // machine can resume the job.
            let checkpoint = runDirectory + "/weights/last.pt"
            // Not after the last epoch: the engine is about to rewrite last.pt
            // (stripped), and the final artifacts are kept anyway.
            if storage.isRemote, epoch < (event.epochs ?? Int.max), FileManager.default.fileExists(atPath: checkpoint),
               await worker.confirmClaim(jobID, lost: lost) {
                // Snapshots first: the engine rewrites both at the next epoch.
                // The results so far go with the checkpoint, so a resume elsewhere continues them.
                let snapshot = jobDirectory + "/last.upload.pt", results = jobDirectory + "/results.upload.csv"
                do {
                    if try FileCopy.copy(from: checkpoint, to: snapshot) {
                        if (try? FileCopy.copy(from: runDirectory + "/results.csv", to: results)) == true {
                            try await storage.artifacts.put(file: results, key: "\(jobID)/results.csv")
                        }
                        try await storage.artifacts.put(file: snapshot, key: "\(jobID)/weights/last.pt")
                    }
                    try? FileManager.default.removeItem(atPath: snapshot)
                    try? FileManager.default.removeItem(atPath: results)
                } catch {
                    worker.logger.warning("job \(jobID): uploading the checkpoint failed (training goes on): \(error)")
                }
            }
        case .artifact:
            guard let path = event.path else { return }
            do { try await keep(path, kind: event.payload["kind"]?.stringValue ?? "other", in: storage) } catch {
                await log.append("[trainyard] keeping \((path as NSString).lastPathComponent) failed: \(Redaction.redactText("\(error)"))")
            }
        case .finished:
            // Weights are only ever in the run folder: anything else means
            // the engine was told to write elsewhere, which is refused.
            for key in ["best", "last"] {
                if let path = event.payload[key]?.stringValue, !isInRunFolder(path) {
                    outcome.failure.withLock { $0 = "the engine reported \(key) weights at \(path), outside the run folder \(runDirectory)" }
                    return
                }
            }
            outcome.finished.withLock { $0 = true }
            try await ledger.update(jobID, JobChange(
                bestWeights: event.payload["best"]?.stringValue, lastWeights: event.payload["last"]?.stringValue,
                fitness: event.payload["fitness"]?.doubleValue,
                finalMetrics: (event.payload["metrics"]?.objectValue ?? [:]).compactMapValues(\.doubleValue)))
        case .evaluation:
            let metrics = Self.evaluationMetrics(event.payload)
            try await ledger.appendEvent(jobID: jobID, type: "evaluation", payload: .object(event.payload))
            let job = try await ledger.update(jobID, JobChange(testMetrics: metrics.filter { $0.key.split(separator: "/").count == 2 }))
            for tracker in worker.trackers { await tracked { try await tracker.logEvaluation(job, metrics) } }
            await log.append("[trainyard] test split: " + ["precision", "recall", "mAP50", "mAP50-95"].compactMap { key in
                metrics["test/\(key)"].map { "\(key) \(String(format: "%.3f", $0))" } }.joined(separator: ", "))
        case .stopped:
            outcome.stopped.withLock { $0 = event.payload["last"]?.stringValue ?? "" }
            try await ledger.update(jobID, JobChange(lastWeights: event.payload["last"]?.stringValue))
        case .failed:
            let type = event.payload["error"]?.stringValue ?? "Error"
            outcome.failure.withLock { $0 = "\(type): \(event.message ?? "the engine failed")" }
        case .progress, .log:
            break
        }
    }

    /// An `evaluation` event's numbers as metric names: `test/mAP50-95`
    /// overall, `test/mAP50-95/CLASS` per class (MLflow's alphabet).
    static func evaluationMetrics(_ payload: [String: JSONValue]) -> [String: Double] {
        let split = payload["split"]?.stringValue ?? "test"
        var metrics: [String: Double] = [:]
        for (key, value) in payload["metrics"]?.objectValue ?? [:] {
            if let number = value.doubleValue { metrics["\(split)/\(key)"] = number }
        }
        for row in payload["classes"]?.arrayValue ?? [] {
            guard let name = row["name"]?.stringValue, name != "all" else { continue }
            let clean = String(name.map { $0.isLetter || $0.isNumber || "_-. ".contains($0) ? $0 : "_" }.prefix(100))
            for key in ["precision", "recall", "f1", "mAP50", "mAP50-95"] {
                if let number = row[key]?.doubleValue { metrics["\(split)/\(key)/\(clean)"] = number }
            }
        }
        return metrics
    }

    /// An engine event with the job's secrets masked in every string it carries.
    private func masked(_ event: EngineEvent, _ masker: SecretMasker) -> EngineEvent {
        EngineEvent(kind: event.kind, payload: masker.mask(.object(event.payload)).objectValue ?? event.payload)
    }

    /// Whether a path the engine reported lies inside this job's run folder.
    private func isInRunFolder(_ path: String) -> Bool {
        let standard = URL(fileURLWithPath: path).standardizedFileURL.path
        return standard.hasPrefix(runDirectory + "/")
    }

    /// Copies a run file into the artifact store and records it. Only files
    /// of this job's run or job folder are kept.
    private func keep(_ path: String, kind: String, in storage: JobStorage) async throws {
        let standard = URL(fileURLWithPath: path).standardizedFileURL.path
        guard isInRunFolder(standard) || standard.hasPrefix(jobDirectory + "/") else {
            throw YardError(.invalidInput, field: "artifact", "the engine reported an artifact outside the job's folders: \(path)")
        }
        let relative = path.hasPrefix(runDirectory + "/") ? String(path.dropFirst(runDirectory.count + 1)) : (path as NSString).lastPathComponent
        let key = "\(jobID)/\(relative)"
        let size = try await storage.artifacts.put(file: path, key: key)
        let record = ArtifactRecord(jobID: jobID, key: key, kind: kind, size: size)
        // This worker's copy of the record: keeping a file never waits for the
        // server (its record goes out with the other reports, queued while Redis is away).
        let job = try await ledger.requireCurrent(jobID)
        for tracker in worker.trackers { await tracked { try await tracker.logArtifact(job, record, localPath: path) } }
    }

    private func storeLog(_ log: LogSink, in storage: JobStorage) async {
        guard FileManager.default.fileExists(atPath: log.file) else { return }
        do { try await keep(log.file, kind: "log", in: storage) } catch { worker.logger.error("job \(jobID): keeping the log failed: \(error)") }
    }

    /// The job's final state for this attempt. A failure (the engine's, or
    /// a record that could not be written) wins over a stop it caused.
    private func settlement(exitCode: Int32, outcome: RunOutcome, log: LogSink) async -> Settlement {
        let reason = outcome.stopReason.withLock { $0 }
        let stoppedAt = outcome.stopped.withLock { $0 }
        let failure = outcome.failure.withLock { $0 }
        if outcome.finished.withLock({ $0 }) && exitCode == 0 && failure == nil {
            return Settlement(state: .succeeded, message: "finished")
        } else if reason == .shutdown && failure == nil {
            // The service is going down: keep the job for the next start.
            return Settlement(state: .queued, message: "interrupted by shutdown; will resume from its last checkpoint")
        } else if failure == nil && (stoppedAt != nil || reason == .user) {
            let epoch = (try? await ledger.current(jobID))??.epoch ?? 0
            let note = outcome.killed.withLock({ $0 }) ? " (killed after the grace period)" : ""
            return Settlement(state: .stopped, message: "stopped after epoch \(epoch)\(note); `yard resume \(jobID)` continues it")
        } else {
            let lastLine = await log.lastLine ?? "none"
            return Settlement(state: .failed, message: failure ?? "the engine exited with code \(exitCode) without reporting why; last log line: \(lastLine)")
        }
    }

    /// Records how the attempt ended, unless the claim was lost: then the
    /// attempt that holds the job now records its end, not this one.
    private func settle(_ settlement: Settlement) async {
        // A worker paused past its lease learns here, at the latest, that
        // another attempt holds the job (its heartbeat may not have run yet).
        _ = await worker.confirmClaim(jobID, lost: lost)
        if lost.isSet {
            worker.logger.error("job \(jobID): lost the claim to another worker; this attempt's end (\(settlement.state.rawValue)) is not recorded")
            return
        }
        await worker.settle(jobID, settlement)
    }

    /// Runs a tracker call; a failure is logged, never thrown.
    @discardableResult
    private func tracked<T: Sendable>(_ call: () async throws -> T) async -> T? {
        do { return try await call() } catch {
            worker.logger.warning("job \(jobID): tracker call failed (training goes on): \(error)")
            return nil
        }
    }
}

/// What an attempt learned, written from the event loop and the stop watcher.
final class RunOutcome: Sendable {
    /// Who asked the engine to stop: a user, the service going down, or the
    /// worker itself after a failure to record the run.
    enum StopReason: Sendable { case user, shutdown, failure, lostClaim }
    let stopReason = Locked<StopReason?>(nil)
    /// Signalled when a stop is first asked for (the grace period starts).
    let stopSignalled = Wakeup()
    let finished = Locked(false)
    let killed = Locked(false)
    let stopped = Locked<String?>(nil)
    let failure = Locked<String?>(nil)

    /// Records why the engine is asked to stop (the first reason stays) and starts the grace period.
    func stop(_ reason: StopReason) {
        stopReason.withLock { $0 = $0 ?? reason }
        stopSignalled.signal()
    }
}

/// A value behind a lock, shared by reference (a `Mutex` cannot be copied).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
