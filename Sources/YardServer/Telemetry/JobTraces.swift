import Foundation
import Logging
import ServiceLifecycle
import YardDomain
import YardStore

/// A trace for each job run, made from the event log when the run ends, so
/// no code that moves a job has to know about tracing: the log already
/// holds the submit, each claim (`state` running), the engine's start
/// (`started`), the first epoch and the end. One trace per run (a resumed
/// job's second run is a trace of its own):
///
///     job JOB_ID                    submit (or resume) → end
///       queued                      → the first claim
///       attempt N                   claim → the state after it (per attempt: OOM retries, crashes)
///         engine start              claim → `started`
///         first epoch               `started` → epoch 1 (or the first epoch of a resume)
///         training                  first epoch → end of the attempt
///
/// Ids are derived from the job id and the events' sequence numbers: a
/// follower that reads the same run again sends the same spans. Starts at
/// the log's head (runs that end after the server starts) and follows it
/// with `EventLog.follow`, as `MetricsFollower` does.
public struct JobTraces: Service {
    let store: any JobStore
    let exporter: TraceExporter
    let logger: Logger
    static let filter = EventFilter(entity: .job, types: ["state"])

    public init(store: any JobStore, exporter: TraceExporter, logger: Logger) {
        self.store = store
        self.exporter = exporter
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await store.follow(Self.filter, missed: { logger.debug("traces: cannot read the events missed: \($0)") }) { await observe($0) }
        }
    }

    func observe(_ event: JobEvent) async {
        guard let state = event.payload["state"]?.stringValue.flatMap(JobState.init(rawValue:)), state.isTerminal else { return }
        do {
            guard let job = try await store.job(event.jobID) else { return }
            let (events, resumed) = try await runEvents(job.id, through: event.id)
            exporter.record(Self.spans(job: job, events: events, resumed: resumed))
        } catch {
            logger.debug("traces: cannot read job \(event.jobID): \(error)")
        }
    }

    /// The job's events up to `end`, from the one after its previous end
    /// (the run that just ended), and whether there was a previous end.
    func runEvents(_ id: String, through end: Int64) async throws -> ([JobEvent], Bool) {
        var events: [JobEvent] = [], cursor: Int64 = 0, resumed = false
        while true {
            let page = try await store.events(of: id, after: cursor, limit: 1000)
            for event in page where event.id <= end && ["state", "started", "epoch"].contains(event.type) {
                if event.id < end, event.type == "state", Self.state(event)?.isTerminal == true {
                    events = []
                    resumed = true
                } else { events.append(event) }
            }
            guard let last = page.last, page.count == 1000, last.id < end else { break }
            cursor = last.id
        }
        return (events, resumed)
    }

    static func state(_ event: JobEvent) -> JobState? {
        event.type == "state" ? event.payload["state"]?.stringValue.flatMap(JobState.init(rawValue:)) : nil
    }

    /// The spans of one run: `events` are its `state`, `started` and `epoch`
    /// events in order, the last one its end.
    /// `resumed`: an earlier run of the job ended before this one began.
    public static func spans(job: Job, events: [JobEvent], resumed: Bool = false) -> [TraceSpan] {
        guard let end = events.last, let endState = state(end), endState.isTerminal else { return [] }
        let first = events.first
        let runStart = first?.time ?? job.createdAt
        let runKey = "\(job.id)#\(first?.id ?? 0)"
        let trace = TraceSpan.traceID(for: runKey)
        let root = TraceSpan.spanID(for: runKey)
        var rootAttributes: [String: JSONValue] = [
            "trainyard.job.id": .string(job.id), "trainyard.experiment": .string(job.experiment), "trainyard.model": .string(job.model),
            "trainyard.job.state": .string(endState.rawValue), "trainyard.job.attempts": .int(job.attempts),
        ]
        if let owner = job.owner { rootAttributes["trainyard.user"] = .string(owner) }
        if let epochs = job.epochs { rootAttributes["trainyard.epochs"] = .int(epochs) }
        if let epoch = job.epoch { rootAttributes["trainyard.epoch"] = .int(epoch) }
        if let fitness = job.fitness { rootAttributes["trainyard.fitness"] = .double(fitness) }
        if let priority = job.priority { rootAttributes["trainyard.priority"] = .int(priority) }
        if resumed { rootAttributes["trainyard.resumed"] = .bool(true) }
        let failure = endState == .failed ? (end.payload["message"]?.stringValue ?? job.message ?? "failed") : nil
        var spans = [TraceSpan(traceID: trace, spanID: root, name: "job \(job.id)", start: runStart, end: end.time,
                               attributes: rootAttributes, error: failure)]

        // Attempts: each claim (state running) up to the next state that is not running or stopping.
        var claims: [(claim: JobEvent, end: JobEvent)] = []
        var open: JobEvent?
        for event in events {
            guard let moved = state(event) else { continue }
            if moved == .running {
                if let current = open { claims.append((current, event)) }
                open = event
            } else if moved != .stopping, let current = open {
                claims.append((current, event))
                open = nil
            }
        }
        if let firstClaim = claims.first?.claim {
            spans.append(TraceSpan(traceID: trace, spanID: TraceSpan.spanID(for: runKey + "/queued"), parentID: root, name: "queued",
                                   start: runStart, end: firstClaim.time))
        } else {
            // Never claimed: the whole run waited (stopped or failed in the queue).
            spans.append(TraceSpan(traceID: trace, spanID: TraceSpan.spanID(for: runKey + "/queued"), parentID: root, name: "queued",
                                   start: runStart, end: end.time))
        }
        for (index, (claim, attemptEnd)) in claims.enumerated() {
            let attemptKey = "\(job.id)#\(claim.id)"
            let attempt = TraceSpan.spanID(for: attemptKey)
            let inside = events.filter { $0.id > claim.id && $0.id < attemptEnd.id }
            let started = inside.first { $0.type == "started" }
            let firstEpoch = inside.first { $0.type == "epoch" }
            var attributes: [String: JSONValue] = ["trainyard.attempt": .int(index + 1)]
            for key in ["device", "host"] { if let value = started?.payload[key]?.stringValue { attributes["trainyard.\(key)"] = .string(value) } }
            if index == claims.count - 1, let worker = job.worker { attributes["trainyard.worker"] = .string(worker) }
            let attemptState = state(attemptEnd)
            attributes["trainyard.attempt.outcome"] = .string(attemptState?.rawValue ?? "unknown")
            let attemptError = attemptState == .failed || attemptState == .queued
                ? (attemptEnd.payload["message"]?.stringValue ?? attemptState?.rawValue) : nil
            spans.append(TraceSpan(traceID: trace, spanID: attempt, parentID: root, name: "attempt \(index + 1)",
                                   start: claim.time, end: attemptEnd.time, attributes: attributes,
                                   error: attemptState == .succeeded || attemptState == .stopped ? nil : attemptError))
            let engineEnd = started?.time ?? attemptEnd.time
            spans.append(TraceSpan(traceID: trace, spanID: TraceSpan.spanID(for: attemptKey + "/engine"), parentID: attempt,
                                   name: "engine start", start: claim.time, end: engineEnd))
            guard let started else { continue }
            spans.append(TraceSpan(traceID: trace, spanID: TraceSpan.spanID(for: attemptKey + "/first-epoch"), parentID: attempt,
                                   name: "first epoch", start: started.time, end: firstEpoch?.time ?? attemptEnd.time,
                                   attributes: firstEpoch?.payload["epoch"]?.intValue.map { ["trainyard.epoch": .int($0)] } ?? [:]))
            if let firstEpoch {
                let epochs = inside.filter { $0.type == "epoch" }.count
                spans.append(TraceSpan(traceID: trace, spanID: TraceSpan.spanID(for: attemptKey + "/training"), parentID: attempt,
                                       name: "training", start: firstEpoch.time, end: attemptEnd.time,
                                       attributes: ["trainyard.epochs.recorded": .int(epochs)]))
            }
        }
        return spans
    }
}
