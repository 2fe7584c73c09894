import Foundation

/// A job's priority, `priority: 0-9` in its config (9 first). Members may
/// ask for up to 7, admins for up to 9; a server without auth takes any.
public enum JobPriority {
    public static let `default` = 5
    public static let range = 0...9

    /// The highest priority `role` may ask for (nil: a server without auth).
    public static func limit(for role: Role?) -> Int {
        switch role {
        case nil, .admin?: 9
        case .member?, .viewer?: 7
        }
    }

    /// Refuses a priority above the caller's limit, in one line naming the field.
    public static func authorise(_ priority: Int, caller: Caller?) throws(YardError) {
        let limit = limit(for: caller?.role)
        guard priority > limit, let caller else { return }
        throw YardError(.forbidden, field: "priority",
                        "forbidden: priority \(priority) is above a \(caller.role.rawValue)'s limit of \(limit) (\(caller.name)); use priority: 0-\(limit) or ask an admin")
    }
}

/// Whose GPU time fair share balances among jobs of one priority: the
/// job's owner, or its experiment (`--fair-share`).
public enum FairShare: String, Sendable, CaseIterable {
    case user, experiment
}

/// How the queue picks the next job (a server setting, the same for every
/// queue driver).
public struct SchedulingPolicy: Sendable, Hashable {
    public var fairShare: FairShare
    /// A waiting job gains one priority level per this many seconds waited
    /// (`--priority-aging`); nil or 0: never.
    public var agingSeconds: Double?
    /// At most this many running jobs per user (`--max-running`); more of
    /// that user's jobs wait, saying why. Nil: no limit. Jobs without an
    /// owner (a server with no token) are not limited.
    public var maxRunningPerUser: Int?

    public init(fairShare: FairShare = .user, agingSeconds: Double? = 3600, maxRunningPerUser: Int? = nil) {
        self.fairShare = fairShare
        self.agingSeconds = agingSeconds
        self.maxRunningPerUser = maxRunningPerUser
    }

    public static let `default` = SchedulingPolicy()
    /// How far back GPU time counts for fair share.
    public static let usageWindow: TimeInterval = 24 * 3600
}

/// What the queue keeps about a waiting job to order it.
public struct QueueTicket: Sendable, Hashable {
    public var jobID: String
    public var priority: Int
    public var owner: String?
    public var experiment: String
    public var enqueuedAt: Date
    /// What the worker that claims it must offer (`resources:`, routing).
    public var resources: JobResources

    public init(jobID: String, priority: Int = JobPriority.default, owner: String? = nil, experiment: String = "default",
                enqueuedAt: Date = Date(), resources: JobResources = .none) {
        self.jobID = jobID
        self.priority = priority
        self.owner = owner
        self.experiment = experiment
        self.enqueuedAt = enqueuedAt
        self.resources = resources
    }

    /// The ticket of a job queued (again) at `time`.
    public init(_ job: Job, at time: Date) {
        self.init(jobID: job.id, priority: job.priority ?? job.config["priority"]?.intValue ?? JobPriority.default,
                  owner: job.owner, experiment: job.experiment, enqueuedAt: time, resources: JobResources(config: job.config))
    }

    /// The key fair share counts this job's GPU time under.
    public func share(_ mode: FairShare) -> String { Self.share(mode, owner: owner, experiment: experiment) }

    static func share(_ mode: FairShare, owner: String?, experiment: String) -> String {
        switch mode {
        case .user: "u:" + (owner ?? "")
        case .experiment: "e:" + experiment
        }
    }
}

/// One claim of a job, as GPU time: from its claim until it ended (nil: still held).
public struct UsageSpan: Sendable, Hashable {
    public var owner: String?
    public var experiment: String
    public var start: Date
    public var end: Date?

    public init(owner: String?, experiment: String, start: Date, end: Date?) {
        self.owner = owner
        self.experiment = experiment
        self.start = start
        self.end = end
    }
}

/// GPU time of one share in the window: seconds, and claims (which break
/// ties between shares whose jobs took no measurable time yet).
public struct ShareUsage: Sendable, Hashable {
    public var seconds: Double = 0
    public var claims: Int = 0
    public init(seconds: Double = 0, claims: Int = 0) {
        self.seconds = seconds
        self.claims = claims
    }
}

/// The one place the next job is chosen, for every queue driver: highest
/// effective priority (the job's, plus one level per aging interval
/// waited); among equals the share (user or experiment) with the least GPU
/// time in the last 24 h, then the fewest claims in that window, then
/// first in first out.
public enum ClaimOrder {
    public struct Candidate: Sendable, Hashable {
        public var ticket: QueueTicket
        /// The order of enqueueing (lower first).
        public var seq: Int64
        public init(ticket: QueueTicket, seq: Int64) {
            self.ticket = ticket
            self.seq = seq
        }
    }

    public static func effectivePriority(_ ticket: QueueTicket, now: Date, policy: SchedulingPolicy) -> Int {
        guard let aging = policy.agingSeconds, aging > 0 else { return ticket.priority }
        let waited = max(0, now.timeIntervalSince(ticket.enqueuedAt))
        return ticket.priority + Int(min(waited / aging, 1_000_000))
    }

    /// GPU time per share within the window ending `now`.
    public static func usage(_ spans: [UsageSpan], now: Date, policy: SchedulingPolicy) -> [String: ShareUsage] {
        let from = now.addingTimeInterval(-SchedulingPolicy.usageWindow)
        var usage: [String: ShareUsage] = [:]
        for span in spans {
            let end = min(span.end ?? now, now)
            guard end >= from else { continue }
            let key = QueueTicket.share(policy.fairShare, owner: span.owner, experiment: span.experiment)
            usage[key, default: ShareUsage()].seconds += max(0, end.timeIntervalSince(max(span.start, from)))
            usage[key, default: ShareUsage()].claims += 1
        }
        return usage
    }

    /// Claims held now, per owner (spans not ended), for `--max-running`.
    public static func running(_ spans: [UsageSpan]) -> [String: Int] {
        var running: [String: Int] = [:]
        for span in spans where span.end == nil {
            if let owner = span.owner { running[owner, default: 0] += 1 }
        }
        return running
    }

    /// Why a waiting job may not be claimed now (one line, starting
    /// "waiting: "); nil when it may.
    public static func blocked(_ ticket: QueueTicket, running: [String: Int], policy: SchedulingPolicy) -> String? {
        guard let limit = policy.maxRunningPerUser, let owner = ticket.owner else { return nil }
        let count = running[owner] ?? 0
        guard count >= limit else { return nil }
        return "waiting: \(owner) has \(count) running job\(count == 1 ? "" : "s") (at most \(limit) per user)"
    }

    /// The index of the candidate for a worker offering `capacity` to claim
    /// next; nil when there is none (or every one is blocked, or asks for
    /// more than the worker has: `Routing.fits`). A job the worker cannot
    /// take does not hold back the ones it can.
    public static func next(_ candidates: [Candidate], usage: [String: ShareUsage], running: [String: Int] = [:], now: Date,
                            policy: SchedulingPolicy, capacity: WorkerCapacity = .plain) -> Int? {
        var best: (index: Int, priority: Int, usage: ShareUsage, seq: Int64)?
        for (index, candidate) in candidates.enumerated() {
            if !Routing.fits(candidate.ticket.resources, on: capacity) { continue }
            if blocked(candidate.ticket, running: running, policy: policy) != nil { continue }
            let priority = effectivePriority(candidate.ticket, now: now, policy: policy)
            let used = usage[candidate.ticket.share(policy.fairShare)] ?? ShareUsage()
            guard let current = best else {
                best = (index, priority, used, candidate.seq)
                continue
            }
            if (priority, -used.seconds, -used.claims, -candidate.seq) > (current.priority, -current.usage.seconds, -current.usage.claims, -current.seq) {
                best = (index, priority, used, candidate.seq)
            }
        }
        return best?.index
    }
}
