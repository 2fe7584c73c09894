import Foundation
import Logging
import ServiceLifecycle
import YardDomain
import YardStore

/// Registers succeeded jobs whose config asks for it, on the server, in the
/// registry of record, whichever worker ran the job, with or without MLflow:
/// `mlflow.register_model` (with `register_alias`), and `deploy:`, which also
/// promotes the new version to its alias only if it beats the version that
/// holds it on the deploy metric (and passes the hot swap's health check
/// when the alias is served). It follows the event log: the newest
/// succeeded jobs are looked at when it starts (a job that succeeded while
/// the server was down is handled when it is back) and whenever the log
/// says a job succeeded; it never reads the store on a timer. A
/// registration that fails (weights not uploaded yet) is retried with
/// backoff. Every outcome is a `registration` or `deployment` event on the job.
public actor AutoRegistration: Service {
    let registry: ModelRegistry
    let logger: Logger
    private var done: Set<String> = []
    private var failures: [String: (count: Int, next: Date)] = [:]

    public init(registry: ModelRegistry, logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

    public func run() async throws {
        // Subscribed before the first scan: a job that succeeds in between is seen by one or the other.
        let wakeup = Wakeup()
        let follower = registry.store.feed.wake(wakeup, when: Self.isSuccess)
        defer { follower.cancel() }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.scan()
                // Asleep until a job succeeds, or a failed registration's backoff is up.
                await wakeup.wait(timeout: await self.nextRetry())
            }
        }
    }

    /// A job's state event into `succeeded`.
    static func isSuccess(_ event: JobEvent) -> Bool {
        event.entity == .job && event.type == "state" && event.payload["state"]?.stringValue == JobState.succeeded.rawValue
    }

    /// How long until the first failed registration may be tried again (nil: none waits).
    private func nextRetry() -> Duration? {
        guard let next = failures.values.map(\.next).min() else { return nil }
        return .milliseconds(max(50, Int(next.timeIntervalSinceNow * 1000)))
    }

    /// One pass; returns the versions it registered.
    @discardableResult
    public func scan(limit: Int = 200) async -> [ModelVersion] {
        guard let jobs = try? await registry.store.jobs(limit: limit, state: .succeeded) else { return [] }
        var made: [ModelVersion] = []
        for job in jobs.reversed() where !done.contains(job.id) {
            let register = job.config["mlflow"]?["register_model"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
            let deploy = job.config["deploy"].flatMap { try? DeploySpec.parse($0) }
            guard register != nil || deploy != nil else {
                done.insert(job.id)
                continue
            }
            if let failure = failures[job.id], failure.next > Date() { continue }
            do {
                if let name = register {
                    let alias = job.config["mlflow"]?["register_alias"]?.stringValue
                    let (version, created) = try await registry.register(jobID: job.id, name: name, alias: alias, reason: "register_model",
                                                                         aliasExisting: false)
                    if created { made.append(version) }
                    await note(job.id, "registration", ["model": .string(name), "version": .string(version.version), "sha256": .string(version.sha256 ?? "")],
                               "registered as \(name) version \(version.version)\(alias.map { " (\($0))" } ?? "")", created: created)
                }
                if let deploy {
                    let (version, created) = try await registry.register(jobID: job.id, name: deploy.model, alias: nil, reason: "deploy")
                    if created { made.append(version) }
                    // Decided once per job: a restart does not decide again (the
                    // alias may have been moved by hand since).
                    if try await !decided(job.id) { await promote(job, version, deploy) }
                }
                done.insert(job.id)
                failures[job.id] = nil
            } catch {
                let count = (failures[job.id]?.count ?? 0) + 1
                // 2 s, 4 s, 6 s, ... up to a minute; given up after about three hours.
                let delay = min(60, 2 * Double(count))
                failures[job.id] = (count, Date().addingTimeInterval(delay))
                if count >= 200 { done.insert(job.id) }
                let reason = Redaction.redactText("\(error)")
                logger.warning("job \(job.id): registering it failed (try \(count)): \(reason)")
                if count == 1 || count % 10 == 0 {
                    try? await registry.records.decided(jobID: job.id, "registration", [
                        "error": .string(String(reason.prefix(500))), "tries": .int(count)])
                }
            }
        }
        return made
    }

    /// Moves the alias to the new version if it beats the one holding it.
    private func promote(_ job: Job, _ version: ModelVersion, _ deploy: DeploySpec) async {
        var payload: [String: JSONValue] = ["model": .string(deploy.model), "version": .string(version.version), "alias": .string(deploy.alias),
                                            "metric": .string(deploy.metric)]
        let candidate = version.metrics?[deploy.metric]
        payload["value"] = candidate.map { .double($0) } ?? .null
        let holder = (try? await registry.store.modelVersions(name: deploy.model))?.first { $0.aliases.contains(deploy.alias) }
        let decision: (promote: Bool, reason: String)
        if let holder, holder.version == version.version {
            decision = (false, "version \(version.version) already holds \(deploy.alias)")
        } else if let holder {
            payload["current_version"] = .string(holder.version)
            let current = holder.metrics?[deploy.metric]
            payload["current_value"] = current.map { .double($0) } ?? .null
            switch (candidate, current) {
            case (nil, _):
                decision = (false, "the job has no \(deploy.metric) to compare")
            case (let mine?, nil):
                decision = (true, "version \(holder.version) has no \(deploy.metric); \(mine) takes \(deploy.alias)")
            case (let mine?, let theirs?):
                decision = deploy.beats(mine, theirs)
                    ? (true, "\(deploy.metric) \(mine) beats version \(holder.version)'s \(theirs) by more than \(deploy.minImprovement)")
                    : (false, "\(deploy.metric) \(mine) does not beat version \(holder.version)'s \(theirs) by more than \(deploy.minImprovement)")
            }
        } else {
            decision = (true, "no version holds \(deploy.alias) yet")
        }
        var promoted = decision.promote
        var reason = decision.reason
        if promoted {
            do {
                try await registry.setAlias(name: deploy.model, version: version.version, alias: deploy.alias, reason: "deploy: \(reason)")
            } catch {
                promoted = false
                reason = Redaction.redactText("\(error)")
            }
        }
        payload["promoted"] = .bool(promoted)
        payload["reason"] = .string(String(reason.prefix(1000)))
        try? await registry.records.decided(jobID: job.id, "deployment", .object(payload))
        logger.info("job \(job.id): \(deploy.model) version \(version.version) \(promoted ? "promoted to" : "not promoted to") \(deploy.alias): \(reason)")
    }

    private func decided(_ jobID: String) async throws -> Bool {
        var after: Int64 = 0
        while true {
            let events = try await registry.store.events(of: jobID, after: after, limit: 500)
            if events.contains(where: { $0.type == "deployment" }) { return true }
            guard let last = events.last, events.count == 500 else { return false }
            after = last.id
        }
    }

    private func note(_ jobID: String, _ type: String, _ payload: [String: JSONValue], _ message: String, created: Bool) async {
        guard created else { return }
        logger.info("job \(jobID): \(message)")
        try? await registry.records.decided(jobID: jobID, type, .object(payload))
    }
}
