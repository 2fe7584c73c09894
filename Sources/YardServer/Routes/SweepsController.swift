import Foundation
import Hummingbird
import YardDomain
import YardStore
import YardSweeps

/// `/api/sweeps`: create a sweep from a config, list, show (its trials
/// with their jobs' states, the best trial and its ready-to-submit
/// config), stop.
struct SweepsController<Context: RequestContext> {
    let sweeps: SweepService
    let store: any JobStore
    /// `--allow-private-webhooks`: whether `notify.url` may be a literal private address.
    var allowPrivateWebhooks = true

    func addRoutes(to group: RouterGroup<Context>) {
        group.post(use: create)
        group.get(use: list)
        group.get("{id}", use: show)
        group.post("{id}/stop", use: stop)
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        let config = try await JobsController<Context>.config(from: request, allowPrivateWebhooks: allowPrivateWebhooks)
        let sweep = try await sweeps.create(config)
        return try JSONResponse.make(try await Self.detail(sweep, store: store), status: .created)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let limit = try Query.int(request, "limit", in: 1...1000) ?? 100
        var summaries: [JSONValue] = []
        for sweep in try await store.sweeps(limit: limit, active: false) { summaries.append(try Self.summary(sweep)) }
        return try JSONResponse.make(["sweeps": JSONValue.array(summaries)])
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        let id = try sweepID(context)
        guard let sweep = try await store.sweep(id) else { throw YardError(.notFound, field: "id", "no sweep \(id); `yard sweeps` lists them") }
        return try JSONResponse.make(try await Self.detail(sweep, store: store))
    }

    @Sendable func stop(_ request: Request, context: Context) async throws -> Response {
        let id = try sweepID(context)
        guard try await store.sweep(id) != nil else { throw YardError(.notFound, field: "id", "no sweep \(id); `yard sweeps` lists them") }
        return try JSONResponse.make(try await Self.detail(try await sweeps.stop(id), store: store))
    }

    private func sweepID(_ context: Context) throws -> String {
        guard let id = context.parameters.get("id"), !id.isEmpty, id.count <= 200 else { throw YardError.invalid("id", "missing sweep id") }
        return id
    }

    /// The sweep in a line: trials wanted, how many ended how, the best value.
    static func summary(_ sweep: Sweep) throws -> JSONValue {
        // The sweeper block is stored as validated (the storage URL masked, which this does not read).
        let spec = sweep.config["sweeper"].flatMap { try? SweepSpec.parse($0) }
        var counts: [String: Int] = [:]
        for trial in sweep.trials { counts[trial.told?.rawValue ?? "running", default: 0] += 1 }
        var object: [String: JSONValue] = [
            "id": .string(sweep.id), "study": .string(sweep.study), "experiment": .string(sweep.experiment), "state": .string(sweep.state.rawValue),
            "trials": .int(sweep.trials.count), "counts": .object(counts.mapValues { .int($0) }),
            "created_at": .double(sweep.createdAt.timeIntervalSince1970),
        ]
        if let spec {
            object["n_trials"] = .int(spec.trials)
            object["fitness"] = .string(spec.fitness)
        }
        if let message = sweep.message { object["message"] = .string(message) }
        if let run = sweep.mlflowRunID { object["mlflow_run_id"] = .string(run) }
        if let owner = sweep.owner { object["owner"] = .string(owner) }
        if let best = sweep.best { object["best"] = try JSONResponse.value(best) }
        return .object(object)
    }

    /// The whole sweep: its record, each trial with its job's state and
    /// epoch, and the best trial's config ready to submit (secrets masked).
    static func detail(_ sweep: Sweep, store: any JobStore) async throws -> JSONValue {
        guard case .object(var object) = try summary(sweep) else { return .null }
        var trials: [JSONValue] = []
        for trial in sweep.trials {
            guard case .object(var entry) = try JSONResponse.value(trial) else { continue }
            if let job = try await store.job(trial.jobID) {
                entry["state"] = .string(job.state.rawValue)
                if let epoch = job.epoch { entry["epoch"] = .int(epoch) }
                if let message = job.message { entry["message"] = .string(message) }
            } else {
                // Told without a job: its values made the config invalid (the message says why).
                entry["state"] = .string(trial.told?.rawValue ?? "asked")
            }
            trials.append(.object(entry))
        }
        object["trial_list"] = .array(trials)
        object["config"] = sweep.config
        if let best = sweep.best, case .object(let document) = sweep.config {
            var config = SweepSpec.trialDocument(document, values: best.params)
            config["sweeper"] = nil
            config["task_id"] = nil
            object["best_config"] = .object(config)
        }
        if let retrain = sweep.retrainJobID { object["retrain_job_id"] = .string(retrain) }
        return .object(object)
    }
}
