import Foundation
import Logging
import YardDomain
import YardQueue
import YardStore

/// Workers' reports (over Redis; `ReportConsumer` reads them) applied to
/// the store by the same transitions as the server's own calls. Applying is
/// idempotent: a report of an attempt older than the job's current one is
/// dropped (the worker lost its claim), one already applied (delivered
/// again after a restart) is skipped.
extension JobControl: ReportSink, JobIntake {
    /// Applies the reports in one transaction; a store failure is thrown
    /// (the reports stay unacknowledged and are applied on the next try).
    public func apply(_ reports: [ReportEnvelope]) async throws {
        let writes = reports.map(write)
        for (write, result) in zip(writes, try await store.apply(writes)) {
            switch result {
            case .missing: logger.warning("dropping a report for job \(write.id), which this server does not know")
            case .failed(let error): logger.warning("job \(write.id): a worker report could not be applied: \(error)")
            case .applied, .skipped: break
            }
        }
    }

    public func exists(_ id: String) async throws -> Bool { try await store.job(id) != nil }

    public func submit(_ config: JobConfig) async throws -> Job { try await submit(config, gitCommit: nil) }

    public func reject(taskID: String, source: [String: JSONValue], reason: String) async throws {
        _ = try await reject(taskID: taskID, source: source, reason: reason) as Job
    }

    /// The store write of one report. Checked inside the write's
    /// transaction, with the mark it sets.
    func write(_ envelope: ReportEnvelope) -> JobWrite {
        let logger = self.logger
        return JobWrite(id: envelope.jobID) { job in
            let id = envelope.jobID
            let claim = job.claim ?? 0
            if envelope.report.isSide {
                // Outside the sequence: last one wins, unless a newer attempt
                // holds the job (attempt 0: the worker no longer knew which).
                guard envelope.attempt == 0 || envelope.attempt >= claim, case .tracking(let status, let runID, let error) = envelope.report else { return nil }
                return Self.track(&job, status: status, runID: runID, error: error) ? [] : nil
            }
            if envelope.attempt < claim {
                logger.notice("job \(id): dropping a report of attempt \(envelope.attempt); attempt \(claim) holds the job now")
                return nil
            }
            if envelope.attempt == claim, envelope.seq <= job.reportSeq ?? 0 { return nil }
            let takeover = envelope.attempt > claim
            job.claim = envelope.attempt
            job.reportSeq = envelope.seq
            switch envelope.report {
            case .move(.running, let message, let change, let time) where takeover && job.state.isActive:
                // A newer attempt took the job over from a worker that stopped
                // heartbeating: the job stays running, now under this attempt.
                job.state = .running
                job.finishedAt = nil
                if let message { job.message = message }
                change.apply(to: &job)
                let note = "\(message ?? "started") (attempt \(envelope.attempt) took over)"
                return [.event(type: "state", payload: Self.statePayload(job, message: note, time: time))]
            case .move(let state, let message, let change, let time):
                var moved = job
                do {
                    let payload = try Self.transition(&moved, to: state, message: message, at: time) { change.apply(to: &$0) }
                    job = moved
                    return [.event(type: "state", payload: payload)]
                } catch {
                    // The server moved the job meanwhile (stopped with no worker
                    // left): the worker's view loses, the report is consumed.
                    logger.warning("job \(id): a worker report could not be applied: \(error)")
                    return []
                }
            case .update(let change):
                change.apply(to: &job)
                return []
            case .event(let type, let payload): return [.event(type: type, payload: payload)]
            case .logs(let lines): return [.logs(lines)]
            case .epoch(let record): return [.epoch(record)]
            case .artifact(let record): return [.artifact(record)]
            case .tracking: return nil
            }
        }
    }

    /// Where the tracking spool says a job's MLflow run stands (the spool
    /// of this process, or a worker's report): the one place it is written.
    public func recordTracking(jobID: String, status: String, runID: String?, error: String?) async throws {
        _ = try await store.apply([JobWrite(id: jobID) { job in
            Self.track(&job, status: status, runID: runID, error: error) ? [] : nil
        }])
    }

    /// Sets the tracking fields; false when they already say so (nothing to write).
    static func track(_ job: inout Job, status: String, runID: String?, error: String?) -> Bool {
        guard job.tracking != status || job.trackingError != error || (runID != nil && job.mlflowRunID != runID) else { return false }
        job.tracking = status
        job.trackingError = error
        if let runID { job.mlflowRunID = runID }
        return true
    }
}
