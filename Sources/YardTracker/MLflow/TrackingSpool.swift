import Crypto
import Foundation
import Logging
import ServiceLifecycle
import YardDomain

/// MLflow calls, spooled: each job's tracking operations are appended to
/// `DIR/JOB.jsonl` (fast, local, never fails a training) and a replayer sends
/// them in order, recording how far it got in `DIR/JOB.state.json`. When
/// MLflow is down the operations wait on disk and are replayed when it is
/// back. A replay is idempotent: the run is found again by its
/// `trainyard.job_id` tag, and metric points carry the timestamp they were
/// spooled with, so a point sent twice is the same point.
///
/// Appends are group-committed: operations that arrive while a commit is on
/// disk go in the next one, one write and one fsync per file for all of
/// them. An append returns only once its operations are on disk, so what a
/// caller was told is spooled survives a crash.
public actor TrackingSpool: Service {
    public enum Status: String, Sendable { case pending, synced }

    public struct State: Codable, Sendable {
        var sent = 0
        var runID: String?
        var artifactURI: String?
        var trackingURI: String?
        var lastError: String?
        /// Since when a child run's start has found MLflow up but its parent
        /// run not created yet (see `parentWait`).
        var parentWaitSince: Date?

        enum CodingKeys: String, CodingKey {
            case sent, runID = "run_id", artifactURI = "artifact_uri"
            case trackingURI = "tracking_uri", lastError = "last_error", parentWaitSince = "parent_wait_since"
        }
    }

    /// What a spool file is for: a job's run, a sweep's parent run, or a
    /// model's registry operations. The spool names its files; callers
    /// read this, never the names.
    public enum Subject: Sendable, Hashable {
        case job(String)
        case sweep(String)
        /// A model's file (its name, or a hash of a long one).
        case model(key: String)
    }

    public typealias Report = @Sendable (_ subject: Subject, _ status: Status, _ runID: String?, _ error: String?) async -> Void
    /// Told the number MLflow gave a mirrored model version (set by the
    /// composition root, which records it on the version).
    public typealias Mirrored = @Sendable (_ name: String, _ version: String, _ mlflowVersion: String) async -> Void

    let directory: String
    let logger: Logger
    let clientFactory: @Sendable (String) -> MLflowClient
    var report: Report
    var mirrored: Mirrored?
    /// Seals a tracking URI that carries credentials before it is spooled.
    let secrets: SecretBox?
    let clock: any Clock<Duration>
    let initialRetryDelay: Duration
    let maxRetryDelay: Duration
    /// How long the replayer waits after new operations before sending them
    /// (real time, not `clock`): a few epochs a second become one call, not many.
    let linger: Duration
    /// How long a child run's start waits for its parent run to appear
    /// (a sweep's parent is created by the server's spool, a trial's run by
    /// a worker's, in any order after an outage) while MLflow answers; past
    /// that the run is created without a parent, with a warning.
    let parentWait: TimeInterval
    /// The wait before the next replay while something is left: doubles
    /// after each failed replay up to `maxRetryDelay`, back to the start once all is sent.
    public private(set) var retryDelay: Duration
    /// Whether MLflow is known to be unreachable (logged once per outage).
    public private(set) var inOutage = false
    private var parked: CheckedContinuation<Void, Never>?
    private var poked = false

    public init(directory: String, logger: Logger, retryDelay: Duration = .seconds(1), maxRetryDelay: Duration = .seconds(30),
                linger: Duration = .milliseconds(50), parentWait: TimeInterval = 600, clock: any Clock<Duration> = ContinuousClock(),
                clientFactory: @escaping @Sendable (String) -> MLflowClient = { MLflowClient(trackingURI: $0) },
                secrets: SecretBox? = nil, report: @escaping Report = { _, _, _, _ in }, mirrored: Mirrored? = nil) {
        self.directory = directory
        self.secrets = secrets
        self.logger = logger
        self.clientFactory = clientFactory
        self.report = report
        self.mirrored = mirrored
        self.clock = clock
        self.initialRetryDelay = retryDelay
        self.retryDelay = retryDelay
        self.maxRetryDelay = maxRetryDelay
        self.linger = linger
        self.parentWait = parentWait
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }


    /// Appends one operation for a job and nudges the replayer.
    public func append(jobID: String, _ op: [String: JSONValue]) async throws {
        try await append(jobID: jobID, ops: [op])
    }

    /// Appends operations in one write, so a replay never sees some of them
    /// without the others (a run's end and its registration). Returns once
    /// they are on disk, committed together with whatever else arrived.
    public func append(jobID: String, ops: [[String: JSONValue]]) async throws {
        loadPending()  // before any write: the files as they were, then counted as they change
        var bytes = Data()
        for op in ops {
            var op = op
            // A URI with a password is spooled sealed, readable only with the key.
            if let secrets, let uri = op["tracking_uri"]?.stringValue, Redaction.redactURLCredentials(uri) != uri {
                op["tracking_uri"] = .string(secrets.seal(uri))
            }
            bytes += try JSONEncoder().encode(JSONValue.object(op)) + Data("\n".utf8)
        }
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, any Error>) in
            if let index = queued.firstIndex(where: { $0.jobID == jobID }) {
                queued[index].bytes += bytes
                queued[index].operations += ops.count
                queued[index].waiters.append(waiter)
            } else {
                queued.append(Queued(jobID: jobID, bytes: bytes, operations: ops.count, waiters: [waiter]))
            }
            if !committing {
                committing = true
                Task { await self.commitQueued() }
            }
        }
    }

    /// Operations waiting for the next commit, per file in arrival order.
    private struct Queued {
        var jobID: String
        var bytes: Data
        var operations: Int
        var waiters: [CheckedContinuation<Void, any Error>]
    }
    private var queued: [Queued] = []
    private var committing = false
    /// Commits so far (for tests and the benchmark: operations per commit).
    public private(set) var commits = 0

    /// Writes what is queued, one write and fsync per file, off the actor so
    /// appends go on queueing meanwhile; repeats until nothing is left.
    private func commitQueued() async {
        while !queued.isEmpty {
            let batch = queued
            queued = []
            let directory = self.directory
            let results = await Self.write(batch.map { ("\(directory)/\($0.jobID).jsonl", $0.bytes) })
            commits += 1
            for (entry, result) in zip(batch, results) {
                if case .success = result { counted(entry.jobID, entry.operations) }
                for waiter in entry.waiters { waiter.resume(with: result) }
            }
            poke()
        }
        committing = false
    }

    /// Appends each file's bytes with one write and one fsync. A file that
    /// cannot take them all is cut back to where it was: a spool never holds
    /// half an operation.
    nonisolated private static func write(_ files: [(path: String, bytes: Data)]) async -> [Result<Void, any Error>] {
        files.map { path, bytes in
            let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return .failure(YardError(.unavailable, field: path, "cannot open \(path): \(String(cString: strerror(errno)))")) }
            defer { close(fd) }
            var start = lseek(fd, 0, SEEK_END)
            // A process killed in the middle of a write leaves part of a line:
            // cut it off, or the next operation would be glued to it.
            let whole = wholeLinesEnd(fd, size: start)
            if whole < start {
                guard ftruncate(fd, whole) == 0 else {
                    return .failure(YardError(.unavailable, field: path, "cannot repair \(path): \(String(cString: strerror(errno)))"))
                }
                start = whole
            }
            guard AtomicFile.writeAll(bytes, to: fd), fsync(fd) == 0 else {
                let reason = String(cString: strerror(errno))
                _ = ftruncate(fd, start)
                return .failure(YardError(.unavailable, field: path, "cannot spool to \(path): \(reason)"))
            }
            return .success(())
        }
    }

    /// Where the last whole line of a file ends (0 for none).
    nonisolated private static func wholeLinesEnd(_ fd: Int32, size: off_t) -> off_t {
        var end = size
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while end > 0 {
            let count = Int(min(off_t(buffer.count), end))
            let read = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, count, end - off_t(count)) }
            guard read == count else { return size }  // unreadable: leave it to the replay
            if let newline = buffer[..<count].lastIndex(of: UInt8(ascii: "\n")) { return end - off_t(count) + off_t(newline) + 1 }
            end -= off_t(count)
        }
        return 0
    }

    /// What is spooled and not sent: how many operations, and since when
    /// the spool has not been empty (`/metrics`).
    public struct Backlog: Sendable, Equatable {
        public var operations: Int
        public var oldest: Date?
        public init(operations: Int, oldest: Date?) {
            self.operations = operations
            self.oldest = oldest
        }
    }

    /// Operations not sent yet per file, and since when each file has had
    /// some: read from the files once (a file left by an earlier process
    /// waits at least since it was last written), then kept as they are
    /// spooled and sent.
    private var pending: [String: (operations: Int, since: Date)] = [:]
    private var pendingLoaded = false

    public func backlog() -> Backlog {
        loadPending()
        return Backlog(operations: pending.values.reduce(0) { $0 + $1.operations }, oldest: pending.values.map(\.since).min())
    }

    private func counted(_ jobID: String, _ delta: Int) {
        loadPending()
        let operations = (pending[jobID]?.operations ?? 0) + delta
        if operations > 0 {
            pending[jobID] = (operations: operations, since: pending[jobID]?.since ?? Date())
        } else {
            pending[jobID] = nil
        }
    }

    private func loadPending() {
        guard !pendingLoaded else { return }
        pendingLoaded = true
        for jobID in pendingJobs() {
            let path = "\(directory)/\(jobID).jsonl"
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let lines = data.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            let sent = FileManager.default.contents(atPath: "\(directory)/\(jobID).state.json")
                .flatMap { try? JSONDecoder().decode(State.self, from: $0) }?.sent ?? 0
            let written = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date()
            if lines > sent { pending[jobID] = (operations: lines - sent, since: written) }
        }
    }

    /// Job ids with operations not yet sent.
    public func pendingJobs() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".jsonl") }.map { String($0.dropLast(6)) }.sorted()
    }

    /// Replays until graceful shutdown, which cancels a replay in flight (an
    /// MLflow that hangs cannot hold the service past its stop grace); what
    /// was not sent stays spooled for the next start.
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.replayLoop() }
    }

    private func replayLoop() async {
        while !Task.isCancelled {
            poked = false  // this pass reads every spool file; an append from now on asks for another
            let clean = await replayAll()
            guard !Task.isCancelled else { return }
            // Idle until something is spooled; after a failure, also until the backoff passes.
            await pause(upTo: clean ? nil : retryDelay)
            // Then linger a moment: what a busy job spools meanwhile goes in the same call.
            if linger > .zero { try? await Task.sleep(for: linger) }
        }
    }

    private func pause(upTo delay: Duration?) async {
        if poked {
            poked = false
            return
        }
        let clock = self.clock
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.park() }
            if let delay {
                group.addTask {
                    do { try await clock.sleep(for: delay) } catch { return }
                    await self.poke()
                }
            }
            await group.next()
            group.cancelAll()
            poke()
            await group.waitForAll()
            poked = false
        }
    }

    /// Suspends until poked (a new operation, the backoff, or cancellation at shutdown).
    private func park() async {
        if poked { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { parked = $0 }
        } onCancel: {
            Task { await self.poke() }
        }
    }

    private func poke() {
        if let parked {
            self.parked = nil
            parked.resume()
        } else {
            poked = true
        }
    }

    /// Sends everything it can; returns true when nothing is left.
    @discardableResult
    public func replayAll() async -> Bool {
        loadPending()
        var clean = true
        var firstError: String?
        var outage = false
        for job in pendingJobs() {
            if Task.isCancelled { return false }
            if case .failure(let error) = await replay(job) {
                clean = false
                outage = outage || error.outage
                if error.outage { firstError = firstError ?? error.description }
            }
        }
        if !clean && !outage {
            // MLflow answers; a child run waits for its parent: retry soon, quietly.
            retryDelay = initialRetryDelay
        } else if clean {
            if inOutage { logger.info("tracking: MLflow reachable again; the spool is sent") }
            inOutage = false
            retryDelay = initialRetryDelay
        } else if !inOutage {
            logger.warning("tracking: MLflow unreachable (\(firstError ?? "?")); keeping calls in \(directory), retrying with backoff up to \(maxRetryDelay)")
            inOutage = true
            retryDelay = initialRetryDelay
        } else {
            retryDelay = min(retryDelay * 2, maxRetryDelay)
        }
        return clean
    }

    /// Sends one job's unsent operations in order; a failure is an error
    /// that a later replay may get past.
    func replay(_ jobID: String) async -> Result<Void, ReplayError> {
        let path = "\(directory)/\(jobID).jsonl"
        let statePath = "\(directory)/\(jobID).state.json"
        guard var data = FileManager.default.contents(atPath: path) else { return .success(()) }
        // A commit may be writing right now: only whole lines count.
        data = data[..<(data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? data.startIndex)]
        var state = (FileManager.default.contents(atPath: statePath)).flatMap { try? JSONDecoder().decode(State.self, from: $0) } ?? State()
        let lines = data.split(separator: UInt8(ascii: "\n"))
        var ended = false
        while state.sent < lines.count {
            guard let op = try? JSONDecoder().decode(JSONValue.self, from: Data(lines[state.sent])) else {
                logger.error("tracking spool \(jobID): skipping an unreadable line \(state.sent + 1)")
                state.sent += 1
                counted(jobID, -1)
                continue
            }
            // Consecutive metric operations (a backlog after an outage) go in
            // one log-batch call of up to 1000 points.
            var batch = [op]
            if op["op"] == "metrics" {
                var points = op["values"]?.objectValue?.count ?? 0
                while state.sent + batch.count < lines.count,
                      let next = try? JSONDecoder().decode(JSONValue.self, from: Data(lines[state.sent + batch.count])),
                      next["op"] == "metrics", points + (next["values"]?.objectValue?.count ?? 0) <= 1000 {
                    points += next["values"]?.objectValue?.count ?? 0
                    batch.append(next)
                }
            }
            do {
                if batch.count > 1 { try await sendMetrics(batch, state: state) } else { try await perform(op, jobID: jobID, state: &state) }
                state.lastError = nil
                if Self.terminal.contains(op["op"]?.stringValue ?? "") { ended = true }
            } catch let error as MLflowClient.APIError where (400..<500).contains(error.status) && error.status != 429 && error.status != 401 && error.status != 403 {
                // MLflow will never accept this one: say so and go on.
                logger.error("tracking \(jobID): MLflow rejected \(op["op"]?.stringValue ?? "?") (\(error)); skipping it")
                state.lastError = error.description
            } catch let error as ParentPending {
                save(state, to: statePath)
                await report(Self.subject(ofKey: jobID), .pending, state.runID, nil)
                return .failure(ReplayError(description: error.description, outage: false))
            } catch {
                state.lastError = "\(error)"
                save(state, to: statePath)
                await report(Self.subject(ofKey: jobID), .pending, state.runID, state.lastError)
                logger.debug("tracking \(jobID): MLflow unreachable (\(error)); will retry")
                return .failure(ReplayError(description: state.lastError ?? "\(error)"))
            }
            state.sent += batch.count
            counted(jobID, -batch.count)
            save(state, to: statePath)
        }
        // Operations spooled while this replay was sending are not in `data`:
        // the file is kept for the next pass, never deleted with them in it.
        let grown = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? data.count
        let lastOp = lines.last.flatMap({ try? JSONDecoder().decode(JSONValue.self, from: Data($0)) })?["op"]?.stringValue
        if grown > data.count {
            await report(Self.subject(ofKey: jobID), .pending, state.runID, nil)
        } else if ended || Self.terminal.contains(lastOp ?? "") {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: statePath)
            pending[jobID] = nil
            await report(Self.subject(ofKey: jobID), .synced, state.runID, state.lastError)
        } else {
            await report(Self.subject(ofKey: jobID), .pending, state.runID, nil)
        }
        return .success(())
    }

    /// Operations after which a file may be complete: a run's end, and the
    /// registry's mirror operations (a model's file holds nothing else).
    static let terminal: Set<String> = ["end", "register", "model_version", "model_alias"]

    /// The spool key of a model's registry operations: one file per model,
    /// so its versions and alias moves reach MLflow in the order they were made.
    /// A long name is hashed: the file's name must fit the filesystem's 255 bytes.
    public static func modelKey(_ name: String) -> String {
        name.utf8.count <= 180 ? modelPrefix + name : modelPrefix + SHA256.hash(data: Data(name.utf8)).hex.prefix(40)
    }

    /// The spool key of a sweep's parent run.
    public static func sweepKey(_ id: String) -> String { sweepPrefix + id }

    static let modelPrefix = "~model-"
    static let sweepPrefix = "@"

    /// What the file of `key` is for (job ids start with a letter or digit).
    public static func subject(ofKey key: String) -> Subject {
        if key.hasPrefix(modelPrefix) { return .model(key: String(key.dropFirst(modelPrefix.count))) }
        if key.hasPrefix(sweepPrefix) { return .sweep(String(key.dropFirst(sweepPrefix.count))) }
        return .job(key)
    }

    struct ReplayError: Error, CustomStringConvertible {
        var description: String
        /// False when MLflow answered (a child run waiting for its parent).
        var outage = true
    }

    /// A child run's parent is not in MLflow yet.
    struct ParentPending: Error, CustomStringConvertible { var description: String }

    private func sendMetrics(_ ops: [JSONValue], state: State) async throws {
        guard let runID = state.runID, let uri = try state.trackingURI.map(plain) else { return }
        try await clientFactory(uri).logBatch(runID: runID, metrics: ops.flatMap(Self.metrics))
    }

    static func metrics(_ op: JSONValue) -> [MLflowClient.Metric] {
        let step = op["step"]?.intValue ?? 0
        let timestamp = Int64(op["timestamp"]?.intValue ?? 0)
        return (op["values"]?.objectValue ?? [:]).compactMap { key, value in
            value.doubleValue.map { MLflowClient.Metric(key: MetricName.sanitize(key), value: $0, timestamp: timestamp, step: step) }
        }.sorted { $0.key < $1.key }
    }

    private func perform(_ op: JSONValue, jobID: String, state: inout State) async throws {
        if let uri = op["tracking_uri"]?.stringValue { state.trackingURI = uri }
        guard let uri = try state.trackingURI.map(plain) else { return }
        let client = clientFactory(uri)
        switch op["op"]?.stringValue {
        case "start":
            let experiment = op["experiment"]?.stringValue ?? "default"
            let experimentID = try await client.experimentID(named: experiment)
            var tags = (op["tags"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
            // The run is found again by its key tag (a job's id, a sweep's id).
            let key = op["key_tag"]?.stringValue ?? "trainyard.job_id"
            let keyValue = tags[key] ?? jobID
            var run: MLflowClient.RunInfo
            if let id = state.runID {
                run = try await client.getRun(id)
            } else if let found = try await client.findRun(experimentID: experimentID, tag: key, value: keyValue) {
                run = found
            } else {
                if let parent = op["parent"], let tag = parent["tag"]?.stringValue, let value = parent["value"]?.stringValue {
                    if let found = try await client.findRun(experimentID: experimentID, tag: tag, value: value) {
                        tags["mlflow.parentRunId"] = found.runID
                    } else if case let now = Date(), now.timeIntervalSince(state.parentWaitSince ?? now) < parentWait {
                        state.parentWaitSince = state.parentWaitSince ?? now
                        throw ParentPending(description: "waiting for the parent run (\(tag) = \(value))")
                    } else {
                        logger.warning("tracking \(jobID): no parent run with \(tag) = \(value) after \(Int(parentWait)) s; recording the run without one")
                    }
                }
                run = try await client.createRun(experimentID: experimentID, name: op["run_name"]?.stringValue ?? jobID,
                                                 startTime: Int64(op["start_time"]?.intValue ?? 0), tags: tags)
            }
            state.runID = run.runID
            state.artifactURI = run.artifactURI
            let params = (op["params"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
            // Params are write-once in MLflow: send them with the first start only.
            try await client.logBatch(runID: run.runID, params: op["first"] == .bool(false) ? [:] : params, tags: tags)
            if run.status != "RUNNING" && run.status != "" {
                try await client.updateRun(runID: run.runID, status: "RUNNING", endTime: 0)
            }
        case "metrics":
            guard let runID = state.runID else { return }
            try await client.logBatch(runID: runID, metrics: Self.metrics(op))
        case "artifact":
            guard let runID = state.runID, let local = op["local_path"]?.stringValue, let target = op["artifact_path"]?.stringValue else { return }
            guard FileManager.default.fileExists(atPath: local) else {
                logger.warning("tracking \(jobID): artifact \(local) is gone; not uploaded")
                return
            }
            try await client.uploadArtifact(run: .init(runID: runID, artifactURI: state.artifactURI ?? "", status: ""), localPath: local, artifactPath: target)
        case "params":
            guard let runID = state.runID else { return }
            try await client.logBatch(runID: runID, params: (op["params"]?.objectValue ?? [:]).compactMapValues(\.stringValue))
        case "tags":
            guard let runID = state.runID else { return }
            try await client.logBatch(runID: runID, tags: (op["tags"]?.objectValue ?? [:]).compactMapValues(\.stringValue))
        case "register":
            // Spooled by an older version (the worker registered then); the
            // server's registry of record registers and mirrors now.
            logger.info("tracking \(jobID): skipping a spooled registration; the server's registry registers the job's model")
        case "model_version":
            guard let name = op["name"]?.stringValue, let version = op["version"]?.stringValue else { return }
            let run = try await mirrorRun(op, client: client, state: &state)
            try await client.createRegisteredModel(name)
            let mlflowVersion: String
            if let existing = try await client.modelVersion(name: name, runID: run.runID) {
                mlflowVersion = existing
            } else {
                let source = run.artifactURI + "/" + (op["artifact_path"]?.stringValue ?? "weights/best.pt")
                let tags = (op["tags"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
                mlflowVersion = try await client.createModelVersion(name: name, source: source, runID: run.runID, tags: tags)
            }
            await mirrored?(name, version, mlflowVersion)
        case "model_alias":
            guard let name = op["name"]?.stringValue, let alias = op["alias"]?.stringValue else { return }
            guard op["version"]?.stringValue != nil else {
                try await client.deleteAlias(name: name, alias: alias)
                return
            }
            let run = try await mirrorRun(op, client: client, state: &state)
            guard let mlflowVersion = try await client.modelVersion(name: name, runID: run.runID) else {
                // Its version was never mirrored (refused, or its run never came): waited for as long as a run is.
                try wait(&state, for: "model \(name) has no MLflow version from run \(run.runID) yet",
                         else: "model \(name) has no MLflow version from run \(run.runID); alias \(alias) is not mirrored")
            }
            state.parentWaitSince = nil
            try await client.setAlias(name: name, alias: alias, version: mlflowVersion)
        case "end":
            guard let runID = state.runID else { return }
            try await client.updateRun(runID: runID, status: op["status"]?.stringValue ?? "FINISHED", endTime: Int64(op["end_time"]?.intValue ?? 0))
        default:
            logger.warning("tracking \(jobID): unknown spooled operation \(op["op"]?.stringValue ?? "?")")
        }
    }

    /// The MLflow run a registry operation's version was made from: by id
    /// when the server knew it, else found by the job's tag. A run not in
    /// MLflow yet (the worker's spool has not sent it) is waited for, as a
    /// child run waits for its parent.
    private func mirrorRun(_ op: JSONValue, client: MLflowClient, state: inout State) async throws -> MLflowClient.RunInfo {
        if let id = op["run_id"]?.stringValue { return try await client.getRun(id) }
        guard let jobID = op["job_id"]?.stringValue else { throw ParentPending(description: "the operation names no job") }
        let experimentID = try await client.experimentID(named: op["experiment"]?.stringValue ?? "default")
        if let run = try await client.findRun(experimentID: experimentID, tag: "trainyard.job_id", value: jobID) {
            state.parentWaitSince = nil
            return run
        }
        try wait(&state, for: "waiting for job \(jobID)'s MLflow run",
                 else: "job \(jobID) has no MLflow run after \(Int(parentWait)) s; its version is not mirrored")
    }

    /// Something a registry operation needs is not in MLflow yet: retried
    /// quietly (`ParentPending`) for up to `parentWait`, then given up with
    /// a 404 (the operation is skipped and the file goes on).
    private func wait(_ state: inout State, for waiting: String, else givenUp: String) throws -> Never {
        let now = Date()
        if now.timeIntervalSince(state.parentWaitSince ?? now) < parentWait {
            state.parentWaitSince = state.parentWaitSince ?? now
            throw ParentPending(description: waiting)
        }
        state.parentWaitSince = nil
        throw MLflowClient.APIError(status: 404, code: "RESOURCE_DOES_NOT_EXIST", message: givenUp)
    }

    /// Re-seals every sealed tracking URI in a spool folder with the box's
    /// first key (a key rotation; the server is stopped). Lines keep their
    /// order and count, so how far a replay got stays valid. Returns the
    /// number of files rewritten.
    public static func reseal(directory: String, with box: SecretBox) throws -> Int {
        let current = SecretBox.prefix + box.keys[0].id + ":"
        func resealed(_ value: JSONValue) throws -> JSONValue {
            guard case .object(var object) = value, let uri = object["tracking_uri"]?.stringValue,
                  SecretBox.isSealed(uri), !uri.hasPrefix(current) else { return value }
            object["tracking_uri"] = .string(box.seal(try box.openText(uri)))
            return .object(object)
        }
        var rewritten = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".jsonl") || name.hasSuffix(".state.json") {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            var changed = false
            let out = try lines.map { line -> Data in
                guard !line.isEmpty, let value = try? JSONDecoder().decode(JSONValue.self, from: Data(line)) else { return Data(line) }
                let new = try resealed(value)
                if new == value { return Data(line) }
                changed = true
                return try JSONEncoder().encode(new)
            }
            guard changed else { continue }
            try AtomicFile.write(Data(out.joined(separator: Data("\n".utf8))), to: path)
            rewritten += 1
        }
        return rewritten
    }

    /// A spooled value as sent: sealed ones are opened (the state file keeps
    /// the URI as it was spooled, sealed when it carries a password).
    private func plain(_ text: String) throws -> String {
        guard SecretBox.isSealed(text) else { return text }
        guard let secrets else { throw YardError(.unavailable, field: "secret key", "a spooled tracking URI is sealed but no secret key is loaded") }
        return try secrets.openText(text)
    }

    /// How far a replay got. Not flushed to disk: losing it in a crash only
    /// sends some operations again, which MLflow takes as the same ones.
    private func save(_ state: State, to path: String) {
        guard let data = try? JSONEncoder().encode(state) else { return }
        try? AtomicFile.write(data, to: path, durable: false)
    }
}
