import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import YardDomain
import YardJobs
import YardEngine
import YardStore
import YardTracker

/// Runs sweeps: each trial is an ordinary job (same queue, workers, local
/// or over Redis, tracking, artifacts, stop). The study is Optuna's, in
/// the engine's study process: this service asks it for trials, submits
/// them with their values, reports each epoch's fitness from the server's
/// own records (so trials on remote workers are pruned too: the workers
/// never see the study) and stops a trial through the ordinary stop path
/// when the pruner says so; it tells the study how every trial ended.
///
/// Everything it does is idempotent from the store and the study, so a
/// restart carries on: trials asked but never submitted are submitted (a
/// trial's job id is fixed), running ones go on, finished ones are told
/// once and never run again.
public struct SweepService: Service {
    let control: JobControl
    let study: StudyProcess
    /// Where the default Optuna storage lives (`sweeps/optuna.sqlite3`).
    let dataDirectory: String
    /// Validates each trial's config as a submission would be.
    let parser: JobConfigParser
    let logger: Logger
    let retryDelay: Duration
    /// Passes in a row a sweep may fail (its study or config unusable) before
    /// it ends `failed` with the reason; each failure waits twice as long as
    /// the one before (from `retryDelay`, at most `longestWait`) before the next
    /// try, so a storage back within minutes loses nothing and a broken sweep
    /// is neither retried nor logged forever.
    let failureLimit: Int
    let longestWait: Duration
    /// The sweep's parent run in MLflow (its trials' runs are its children).
    let tracker: MLflowSweepTracker?
    /// Sweeps being advanced now (one pass at a time each) and those whose
    /// study this service has opened (the first pass after a start adopts
    /// what the record lost).
    private let passes = Passes()

    final class Passes: Sendable {
        let state = Mutex<(busy: Set<String>, opened: Set<String>)>(([], []))
        /// Each sweep's config with its secrets, validated once: it never changes.
        let configs = Mutex<[String: JobConfig]>([:])
        /// Sweeps whose last passes failed: how many in a row, and when to try again.
        let failures = Mutex<[String: (count: Int, retry: ContinuousClock.Instant)]>([:])
    }

    public init(control: JobControl, study: StudyProcess, dataDirectory: String, parser: JobConfigParser, retryDelay: Duration = .seconds(1),
                failureLimit: Int = 10, longestWait: Duration = .seconds(60), tracker: MLflowSweepTracker? = nil, logger: Logger) {
        self.tracker = tracker
        self.failureLimit = max(1, failureLimit)
        self.longestWait = longestWait
        self.control = control
        self.study = study
        self.dataDirectory = dataDirectory
        self.parser = parser
        self.retryDelay = retryDelay
        self.logger = logger
    }

    var store: any JobStore { control.store }
    /// Every change of a sweep's record goes through the job layer.
    var sweeps: SweepControl { SweepControl(store: control.store) }

    /// Advances the sweeps when the event log says something they wait on
    /// changed (a sweep was created or asked to stop; a job changed state or
    /// finished an epoch: a trial started, ended, or has a value for the
    /// pruner), and otherwise sleeps: the only timer is a failed pass's backoff.
    public func run() async throws {
        // Subscribed before the first pass: a change in between is seen by one or the other.
        let wakeup = Wakeup()
        let follower = store.feed.wake(wakeup, when: Self.concernsSweeps)
        defer { follower.cancel() }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await advanceAll()
                await wakeup.wait(timeout: nextRetry())
            }
        }
        await study.close()
    }

    /// A sweep's own event, or a job's state change or epoch (a trial's, maybe).
    static func concernsSweeps(_ event: JobEvent) -> Bool {
        event.entity == .sweep || (event.entity == .job && (event.type == "state" || event.type == "epoch"))
    }

    /// How long until the first failed sweep may be tried again (nil: none waits).
    private func nextRetry() -> Duration? {
        guard let next = passes.failures.withLock({ $0.values.map(\.retry).min() }) else { return nil }
        return max(.milliseconds(10), next - .now)
    }

    /// One pass over the sweeps that have not ended.
    public func advanceAll() async {
        let active: [Sweep]
        do { active = try await store.sweeps(limit: 10_000, active: true) } catch {
            logger.warning("sweeps: cannot list them: \(error)")
            return
        }
        let now = ContinuousClock.now
        for sweep in active where passes.failures.withLock({ $0[sweep.id].map { $0.retry <= now } ?? true }) {
            do {
                try await advance(sweep.id)
                passes.failures.withLock { _ = $0.removeValue(forKey: sweep.id) }
            } catch {
                await failed(sweep.id, error)
            }
        }
    }

    /// A pass that failed: the sweep waits longer before the next, and ends
    /// after `failureLimit` in a row (`failed`; `stopped` if a stop was asked:
    /// a stop always ends a sweep, even one whose study cannot be told).
    func failed(_ id: String, _ error: any Error) async {
        let count = passes.failures.withLock { failures -> Int in
            let count = (failures[id]?.count ?? 0) + 1
            let wait = min(retryDelay * (1 << min(count - 1, 20)), longestWait)
            failures[id] = (count, ContinuousClock.now + wait)
            return count
        }
        let reason = Self.line(error)
        let state = (try? await store.sweep(id))?.state
        if state == .stopping {
            logger.warning("sweep \(id): \(reason); stopping it without the study")
            await abandon(id, as: .stopped, message: "stopped; the study could not be told how its trials ended: \(reason)")
        } else if count >= failureLimit {
            logger.warning("sweep \(id): failed \(count) passes in a row; ending it: \(reason)")
            await abandon(id, as: .failed, message: "failed \(count) passes in a row: \(reason)")
        } else {
            logger.warning("sweep \(id): \(reason) (pass \(count) of \(failureLimit) before it fails)")
        }
    }

    /// Ends a sweep whose passes cannot: its trials still running are
    /// stopped through the ordinary path, and it is recorded ended.
    func abandon(_ id: String, as state: Sweep.State, message: String) async {
        do {
            guard let sweep = try await store.sweep(id), !sweep.state.isTerminal else { return }
            for trial in sweep.trials where trial.told == nil {
                if let job = try? await store.job(trial.jobID), !job.state.isTerminal { _ = try? await control.stop(job.id) }
            }
            try await end(id, state, message: message)
            passes.failures.withLock { _ = $0.removeValue(forKey: id) }
        } catch {
            logger.warning("sweep \(id): cannot end it (\(state.rawValue)): \(error)")
        }
    }

    /// An error as one line.
    static func line(_ error: any Error) -> String {
        "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// Creates a sweep from a validated config that is one (a search space,
    /// or seed 001's `tune: true`): the study is opened first, so a storage
    /// that cannot be used refuses the sweep with its reason and nothing is
    /// stored. Its first trials are queued at once.
    public func create(_ config: JobConfig) async throws -> Sweep {
        guard let spec = config.sweep, spec.isSweep else {
            throw YardError.invalid("sweeper", "this config is not a sweep; give sweeper.search_space (or sweeper.tune: true)")
        }
        // Its trials are submitted later, for nobody in particular: what they may do is decided now.
        try JobControl.authorise(config)
        // Every trial trains on the same dataset version: `dataset:NAME` is pinned now;
        // and with the same seed (recorded now), so trials differ by their values only.
        let (pinned, _) = try await control.pinDataset(config)
        let config = pinned.withReproducibility(seed: Int.random(in: 0...JobConfig.maxSeed))
        let time = Date()
        let id = "sweep-" + JobID.generate(epochSeconds: Int(time.timeIntervalSince1970), random: UInt32.random(in: 0...UInt32.max)).dropFirst("job-".count)
        let name = spec.studyName ?? id
        if spec.storage == nil, let other = try await store.sweeps(limit: 10_000, active: false).first(where: { $0.study == name }) {
            throw YardError(.conflict, field: "sweeper.study_name", "sweeper.study_name: sweep \(other.id) already ran study \(name); pick another name")
        }
        let secrets = Redaction.secrets(of: config.json)
        let redacted = SecretMasker(secrets: secrets).mask(Redaction.redact(config.json))
        // Every pass reads the config back from the store and validates it again:
        // what would fail there is refused here, with its field, before anything is kept.
        let stored = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(redacted))
        guard case .object(let document) = Redaction.restore(stored, secrets: secrets) else {
            throw YardError.invalid("sweeper", "the config does not read back as a mapping")
        }
        _ = try parser.validate(document)
        try await study.open(StudyDefinition(name: name, storage: try storage(spec), spec: spec))
        let sweep = Sweep(id: id, study: name, experiment: config.experiment, config: redacted, createdAt: time)
        try await sweeps.create(sweep, secrets: secrets)
        passes.state.withLock { _ = $0.opened.insert(id) }
        await track("start") { try await $0.started(sweep, config: config) }
        // The sweep is stored: from here a failure is the service's to retry
        // on its next pass, not the request's (which would read as "not created").
        do { try await advance(id) } catch { logger.warning("sweep \(id): its first trials wait for the next pass: \(error)") }
        return (try? await store.sweep(id)) ?? sweep
    }

    /// Stops a sweep: no more trials; the running ones are stopped (and
    /// told as failed once they have); it ends `stopped`. A stop always ends
    /// a sweep: one whose study or config cannot be used now is ended at
    /// once, its running trials stopped without the study being told.
    public func stop(_ id: String) async throws -> Sweep {
        let sweep = try await sweeps.requestStop(id)
        if sweep.state == .stopping {
            do { try await advance(id) } catch {
                logger.warning("sweep \(id): \(Self.line(error)); stopping it without the study")
                await abandon(id, as: .stopped, message: "stopped; the study could not be told how its trials ended: \(Self.line(error))")
            }
        }
        return try await store.sweep(id) ?? sweep
    }

    /// The Optuna storage of a sweep: its own, else a SQLite file of the server's.
    func storage(_ spec: SweepSpec) throws -> String {
        if let storage = spec.storage { return storage }
        let folder = dataDirectory + "/sweeps"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return "sqlite:///" + folder + "/optuna.sqlite3"
    }

    /// Brings one sweep forward: tells the study how ended trials went,
    /// reports running ones' new epochs (pruning those it says to), asks
    /// for new trials up to `max_concurrent`, and ends the sweep when all
    /// `n_trials` have been told. One pass at a time per sweep.
    func advance(_ id: String) async throws {
        let first = passes.state.withLock { state -> Bool? in
            guard state.busy.insert(id).inserted else { return nil }
            return !state.opened.contains(id)
        }
        guard let first else { return }
        defer { passes.state.withLock { _ = $0.busy.remove(id) } }
        guard var sweep = try await store.sweep(id), !sweep.state.isTerminal else { return }
        let base = try await baseConfig(sweep)
        guard let spec = base.sweep else { throw YardError(.unavailable, "sweep \(id) has no sweeper block") }
        if first {
            // After a restart: open the study again and adopt trials it asked
            // that the record lost (asked just before a crash).
            let trials = try await study.open(StudyDefinition(name: sweep.study, storage: try storage(spec), spec: spec))
            passes.state.withLock { _ = $0.opened.insert(id) }
            // Again after a restart (a crash may have come before it was spooled;
            // MLflow finds the same run by its tag).
            let current = sweep
            await track("start") { try await $0.started(current, config: base) }
            let known = Set(sweep.trials.map(\.number))
            for trial in trials where trial.state == .running && !known.contains(trial.number) {
                sweep = try await sweeps.trialAsked(id, number: trial.number, params: trial.params)
            }
        }

        for trial in sweep.trials where trial.told == nil {
            guard let job = try await store.job(trial.jobID) else {
                // Asked and recorded, never submitted (a crash in between), or stopped first.
                if sweep.state == .running { try await start(trial, of: sweep, base: base, spec: spec) } else { try await tell(sweep, trial, as: .stopped, value: nil, spec: spec) }
                continue
            }
            if job.state.isTerminal {
                // Its learning curve first (epochs that ended between two passes):
                // the median the pruner compares later trials with is made of them.
                try await reportEpochs(of: job, trial: trial, sweep: sweep, spec: spec, mayPrune: false)
                try await tell(sweep, trial, as: job.state, value: job.state == .succeeded ? try await finalValue(job, spec: spec) : nil, spec: spec)
            } else if sweep.state == .stopping {
                _ = try? await control.stop(job.id)
            } else if job.state == .running {
                try await reportEpochs(of: job, trial: trial, sweep: sweep, spec: spec, mayPrune: true)
            }
        }

        sweep = try await store.sweep(id) ?? sweep
        let open = sweep.trials.filter { $0.told == nil }.count
        if sweep.state == .running {
            var active = open
            var asked = sweep.trials.count
            while active < spec.maxConcurrent, asked < spec.trials {
                let (number, params) = try await study.ask(sweep.study)
                let trial = Sweep.Trial(number: number, jobID: Sweep.trialJobID(sweep: id, number: number), params: params)
                // Recorded before it is submitted: a crash in between submits it on the next pass.
                sweep = try await sweeps.trialAsked(id, number: number, params: params)
                try await start(trial, of: sweep, base: base, spec: spec)
                active += 1
                asked += 1
            }
            if open == 0, asked >= spec.trials, sweep.trials.allSatisfy({ $0.told != nil }) {
                try await finish(sweep, base: base, spec: spec)
            }
        } else if sweep.state == .stopping, open == 0 {
            try await end(id, .stopped, message: "stopped after \(sweep.trials.count) trials")
        }
    }

    /// The sweep's config with its secrets, as trials are made from it
    /// (read and validated on the first pass, not on every one).
    func baseConfig(_ sweep: Sweep) async throws -> JobConfig {
        if let known = passes.configs.withLock({ $0[sweep.id] }) { return known }
        let secrets = try await store.sweepSecrets(of: sweep.id)
        guard case .object(let document) = Redaction.restore(sweep.config, secrets: secrets) else {
            throw YardError(.unavailable, "sweep \(sweep.id): its config is not a mapping")
        }
        let config = try parser.validate(document)
        passes.configs.withLock { $0[sweep.id] = config }
        return config
    }

    /// Submits a trial; values that make its config invalid (`batch: [int,
    /// -4, 16]` sampling 0) fail it with the config's reason, told FAIL, and
    /// the study goes on (a sweep that retried it would never end).
    func start(_ trial: Sweep.Trial, of sweep: Sweep, base: JobConfig, spec: SweepSpec) async throws {
        do {
            _ = try await submit(trial, of: sweep, base: base)
        } catch let error as YardError where error.code == .invalidInput {
            logger.warning("sweep \(sweep.id): trial \(trial.number) not run: \(error.message)")
            try await tell(sweep, trial, as: .failed, value: nil, spec: spec, message: error.message)
        }
    }

    /// Submits a trial: the base config with the trial's values, its fixed
    /// job id, and where it belongs in `metadata` (wyolo's trial number too).
    func submit(_ trial: Sweep.Trial, of sweep: Sweep, base: JobConfig) async throws -> Job {
        var document = SweepSpec.trialDocument(base.document, values: trial.params)
        document["task_id"] = .string(trial.jobID)
        document["experiment"] = .string(sweep.experiment)
        let config = try parser.validate(document)
            .withMetadata("sweep_id", .string(sweep.id))
            .withMetadata("trial_number", .int(trial.number + 1))
        do {
            return try await control.submit(config, owner: sweep.owner)
        } catch let error as YardError where error.code == .conflict {
            // Submitted before a crash that lost nothing else: it is there.
            return try await store.require(trial.jobID)
        }
    }

    /// Reports the trial's epochs the study has not seen; prunes the job
    /// when the study says so (not before `grace_period` epochs: Optuna's
    /// warm-up) and `mayPrune` (a trial that ended is only reported).
    func reportEpochs(of job: Job, trial: Sweep.Trial, sweep: Sweep, spec: SweepSpec, mayPrune: Bool) async throws {
        for epoch in try await store.epochs(of: job.id) where epoch.epoch > trial.reported ?? 0 {
            guard let value = epoch.metrics[spec.fitness], value.isFinite else { continue }
            let prune = try await study.report(sweep.study, number: trial.number, step: epoch.epoch, value: value)
            try await sweeps.trialReported(sweep.id, number: trial.number, epoch: epoch.epoch)
            if prune, mayPrune {
                let reason = "pruned at epoch \(epoch.epoch): \(spec.fitness) \(Self.format(value)) (\(spec.pruner.rawValue))"
                logger.info("sweep \(sweep.id): trial \(trial.number) (\(job.id)) \(reason)")
                _ = try await control.prune(job.id, reason: reason)
                return
            }
        }
    }

    /// The trial's result: its fitness metric at the end (Ultralytics'
    /// `fitness`, or the named metric of the final validation, else of the last epoch).
    func finalValue(_ job: Job, spec: SweepSpec) async throws -> Double? {
        if spec.fitness == "fitness", let fitness = job.fitness { return fitness }
        if let value = job.finalMetrics?[spec.fitness] { return value }
        return try await store.epochs(of: job.id).last?.metrics[spec.fitness]
    }

    /// Tells the study how a trial ended and records it, with the best so far.
    func tell(_ sweep: Sweep, _ trial: Sweep.Trial, as end: JobState, value: Double?, spec: SweepSpec, message: String? = nil) async throws {
        let outcome: TrialOutcome = switch end {
        case .succeeded: .complete(value)
        case .pruned: .pruned
        default: .failed
        }
        try await study.tell(sweep.study, number: trial.number, outcome)
        let (before, after) = try await sweeps.trialTold(sweep.id, number: trial.number, as: end, value: value, message: message,
                                                         direction: spec.direction)
        if let best = after.best, best != before?.best {
            let told = after.trials.filter { $0.told != nil }.count
            let config = try await baseConfig(after)
            await track("best") { try await $0.improved(after, config: config, best: best, told: told) }
        }
    }

    /// Every trial told: the sweep ends, and with `retrain_best` the best
    /// trial's config is submitted as a normal job (the base config's epochs).
    func finish(_ sweep: Sweep, base: JobConfig, spec: SweepSpec) async throws {
        let counts = Dictionary(grouping: sweep.trials, by: { $0.told?.rawValue ?? "?" }).mapValues(\.count)
        var message = "\(sweep.trials.count) trials (" + counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")"
        if let best = sweep.best {
            message += "; best: trial \(best.number) \(spec.fitness) \(Self.format(best.value))"
            if spec.retrainBest, sweep.retrainJobID == nil {
                var document = SweepSpec.trialDocument(base.document, values: best.params)
                document["sweeper"] = nil
                document["task_id"] = .string("\(sweep.id)-best")
                let job = try await control.submit(try parser.validate(document).withMetadata("sweep_id", .string(sweep.id)), owner: sweep.owner)
                try await sweeps.retraining(sweep.id, jobID: job.id)
                message += "; retraining it as \(job.id)"
            }
        }
        try await end(sweep.id, .finished, message: message)
    }

    func end(_ id: String, _ end: Sweep.State, message: String) async throws {
        let time = sweeps.endTime()
        // Spooled before it is stored: a crash in between ends it again on
        // the next pass, which MLflow takes as the same end.
        if let current = try await store.sweep(id) {
            let ended = SweepControl.ended(current, as: end, message: message, at: time)
            do {
                let config = try await baseConfig(ended)
                let final = ended
                await track("end") { try await $0.ended(final, config: config) }
            } catch {
                // A config that cannot be read (an older server stored it) ends the sweep untracked.
                logger.warning("sweep \(id): its end is not tracked: \(Self.line(error))")
            }
        }
        try await sweeps.end(id, as: end, message: message, at: time)
        passes.configs.withLock { _ = $0.removeValue(forKey: id) }
        logger.info("sweep \(id) \(end.rawValue): \(message)")
    }

    /// A tracking call: its failure (a full disk under the spool) is logged,
    /// never the sweep's.
    func track(_ what: String, _ call: (MLflowSweepTracker) async throws -> Void) async {
        guard let tracker else { return }
        do { try await call(tracker) } catch { logger.warning("sweep tracking (\(what)): \(error)") }
    }

    static func format(_ value: Double) -> String { String(format: "%.4g", value) }
}
