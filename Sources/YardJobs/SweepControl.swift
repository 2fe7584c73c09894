import Foundation
import YardDomain
import YardStore

/// Every change of a sweep's record, whoever drives the sweep (the sweep
/// service asks Optuna and submits trials through `JobControl`; this says
/// what each step does to the record). The store writes each change with its
/// `state` or `trial` event in the same transaction.
public struct SweepControl: Sendable {
    public let store: any JobStore
    let now: @Sendable () -> Date

    public init(store: any JobStore, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.now = now
    }

    /// Records a new sweep (running, no trials yet) with its config's secrets apart.
    public func create(_ sweep: Sweep, secrets: [String: JSONValue]) async throws {
        var sweep = sweep
        sweep.owner = sweep.owner ?? Caller.current?.name
        try await store.insertSweep(sweep, secrets: secrets)
    }

    /// A stop asked: a sweep that has not ended goes to `stopping` (no new
    /// trials); one that has is left as it is.
    @discardableResult
    public func requestStop(_ id: String) async throws -> Sweep {
        try await store.updateSweep(id) { sweep in
            guard !sweep.state.isTerminal else { return }
            sweep.state = .stopping
            sweep.message = "stop requested"
        }
    }

    /// A trial the study asked for, recorded before its job is submitted (a
    /// crash in between submits it on the next pass). The same number again
    /// adds nothing.
    @discardableResult
    public func trialAsked(_ id: String, number: Int, params: [String: JSONValue]) async throws -> Sweep {
        try await store.updateSweep(id) { sweep in
            guard !sweep.trials.contains(where: { $0.number == number }) else { return }
            sweep.trials.append(Sweep.Trial(number: number, jobID: Sweep.trialJobID(sweep: id, number: number), params: params))
        }
    }

    /// The study has seen the trial's epochs up to `epoch`.
    public func trialReported(_ id: String, number: Int, epoch: Int) async throws {
        try await store.updateSweep(id) { sweep in
            guard let index = sweep.trials.firstIndex(where: { $0.number == number }) else { return }
            sweep.trials[index].reported = max(sweep.trials[index].reported ?? 0, epoch)
        }
    }

    /// The study was told how a trial ended; a succeeded trial with a finite
    /// value better than the best so far (in the sweep's direction) becomes
    /// the best. Returns the sweep before and after.
    public func trialTold(_ id: String, number: Int, as end: JobState, value: Double?, message: String?,
                          direction: SweepSpec.Direction) async throws -> (before: Sweep?, after: Sweep) {
        let before = try await store.sweep(id)
        let after = try await store.updateSweep(id) { sweep in
            guard let index = sweep.trials.firstIndex(where: { $0.number == number }) else { return }
            sweep.trials[index].told = end
            sweep.trials[index].value = value
            if let message { sweep.trials[index].message = message }
            guard end == .succeeded, let value, value.isFinite else { return }
            let better = sweep.best.map { direction == .maximize ? value > $0.value : value < $0.value } ?? true
            if better {
                let trial = sweep.trials[index]
                sweep.best = Sweep.Best(number: trial.number, jobID: trial.jobID, value: value, params: trial.params)
            }
        }
        return (before, after)
    }

    /// The best trial's config was submitted again as a normal job.
    public func retraining(_ id: String, jobID: String) async throws {
        try await store.updateSweep(id) { $0.retrainJobID = jobID }
    }

    /// The sweep's MLflow run, once the tracker made it.
    public func tracked(_ id: String, runID: String) async throws {
        try await store.updateSweep(id) { $0.mlflowRunID = runID }
    }

    /// What ending a sweep does to its record, at `time`: the service shows
    /// the tracker the ended sweep before it is stored (`end` stores the same).
    public static func ended(_ sweep: Sweep, as state: Sweep.State, message: String, at time: Date) -> Sweep {
        var ended = sweep
        ended.state = state
        ended.finishedAt = time
        ended.message = message
        return ended
    }

    /// The time an end is recorded at (one value for the tracker's copy and the record).
    public func endTime() -> Date { now() }

    /// Ends a sweep: finished, stopped or failed, with its message.
    @discardableResult
    public func end(_ id: String, as state: Sweep.State, message: String, at time: Date) async throws -> Sweep {
        try await store.updateSweep(id) { $0 = Self.ended($0, as: state, message: message, at: time) }
    }
}
