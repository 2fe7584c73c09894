/// The life of a job. Every change goes through `canMove(to:)`, so an
/// illegal transition (resuming a finished job, stopping a failed one) is
/// refused in one place.
public enum JobState: String, Sendable, Codable, CaseIterable {
    /// Waiting for a worker.
    case queued
    /// A worker's engine is training it.
    case running
    /// A stop was asked; the engine is ending the epoch and saving a checkpoint.
    case stopping
    case succeeded
    case failed
    /// Stopped by a user; `yard resume` continues it from its checkpoint.
    case stopped
    /// A sweep's trial that its pruner stopped (through the ordinary stop
    /// path) because it was doing worse than the others; final.
    case pruned

    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .stopped || self == .pruned }
    public var isActive: Bool { self == .running || self == .stopping }

    public func canMove(to next: JobState) -> Bool {
        switch (self, next) {
        case (.queued, .running), (.queued, .stopped), (.queued, .stopping): true
        case (.queued, .pruned): true
        case (.running, .stopping), (.running, .succeeded), (.running, .failed), (.running, .stopped), (.running, .queued), (.running, .pruned): true
        case (.stopping, .stopped), (.stopping, .succeeded), (.stopping, .failed), (.stopping, .queued), (.stopping, .pruned): true
        case (.stopped, .queued), (.failed, .queued): true
        default: false
        }
    }

    public func checkMove(to next: JobState, job: String) throws(YardError) {
        guard canMove(to: next) else {
            throw YardError(.conflict, field: "state", "job \(job) is \(rawValue) and cannot become \(next.rawValue)")
        }
    }
}
