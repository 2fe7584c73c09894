import Foundation
import Logging
import ServiceLifecycle
import YardDomain
import YardStore

/// Follows the event log for the training metrics, so no code that moves a
/// job or records an epoch has to call them: an `epoch` event's time goes
/// to the epoch histogram (the first epoch's also to submit-to-first-epoch),
/// a `state` event into a terminal state to the outcome counter and the job
/// duration. Counts what is committed after it starts (a restart starts the
/// counters at zero, as Prometheus expects), following the log with
/// `EventLog.follow` (what it missed behind the feed is read from the store).
public struct MetricsFollower: Service {
    let store: any JobStore
    let metrics: YardMetrics
    let start: Int64?
    let logger: Logger
    static let filter = EventFilter(entity: .job, types: ["epoch", "state"])

    /// - Parameter start: the last event already counted (nil: the log's head when it starts).
    public init(store: any JobStore, metrics: YardMetrics, from start: Int64? = nil, logger: Logger) {
        self.store = store
        self.metrics = metrics
        self.start = start
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            var counted = FirstEpochs()
            try await store.follow(Self.filter, after: start, missed: { logger.debug("metrics: cannot read the events missed: \($0)") }) {
                await observe($0, &counted)
            }
        }
    }

    /// What one event adds to the metrics.
    func observe(_ event: JobEvent, _ counted: inout FirstEpochs) async {
        switch event.type {
        case "epoch":
            if let seconds = event.payload["seconds"]?.doubleValue, seconds > 0 { metrics.epochEnded(seconds: seconds) }
            // Epoch 1 again (a run that restarted from scratch) is not a first epoch again.
            guard event.payload["epoch"]?.intValue == 1, counted.insert(event.jobID),
                  let job = try? await store.job(event.jobID) else { return }
            metrics.firstEpoch(afterSubmit: event.time.timeIntervalSince(job.createdAt))
        case "state":
            guard let state = event.payload["state"]?.stringValue.flatMap(JobState.init(rawValue:)), state.isTerminal else { return }
            let job = try? await store.job(event.jobID)
            metrics.jobEnded(state, seconds: job?.startedAt.map { (job?.finishedAt ?? event.time).timeIntervalSince($0) })
        default: return
        }
    }

    /// Jobs whose first epoch was counted (the latest 10,000).
    struct FirstEpochs {
        private var ids: Set<String> = []
        private var order: [String] = []

        mutating func insert(_ id: String) -> Bool {
            guard ids.insert(id).inserted else { return false }
            order.append(id)
            if order.count > 10_000 { ids.remove(order.removeFirst()) }
            return true
        }
    }
}
