import Foundation
import Testing
import YardDomain

/// The one ordering every queue driver claims by (issue 32).
@Suite("Claim order: priorities, fair share, aging")
struct ClaimOrderTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func candidate(_ id: String, priority: Int = 5, owner: String? = nil, experiment: String = "default",
                          queued: Date = t0, seq: Int64) -> ClaimOrder.Candidate {
        ClaimOrder.Candidate(ticket: QueueTicket(jobID: id, priority: priority, owner: owner, experiment: experiment, enqueuedAt: queued), seq: seq)
    }

    @Test func aHigherPriorityGoesFirstWhateverItsPlace() {
        var waiting = (1...10).map { Self.candidate("p5-\($0)", seq: Int64($0)) }
        waiting.append(Self.candidate("p9", priority: 9, seq: 11))
        let index = ClaimOrder.next(waiting, usage: [:], now: Self.t0, policy: .default)
        #expect(index.map { waiting[$0].ticket.jobID } == "p9")
    }

    @Test func equalJobsAreFirstInFirstOut() {
        let waiting = [Self.candidate("b", seq: 2), Self.candidate("a", seq: 1), Self.candidate("c", seq: 3)]
        #expect(ClaimOrder.next(waiting, usage: [:], now: Self.t0, policy: .default).map { waiting[$0].ticket.jobID } == "a")
        #expect(ClaimOrder.next([], usage: [:], now: Self.t0, policy: .default) == nil)
    }

    /// Ten jobs each from two users, one worker, each job a minute: the
    /// users alternate, though all of ann's were queued first.
    @Test func twoUsersAlternate() {
        var waiting = (0..<10).map { Self.candidate("ann-\($0)", owner: "ann", seq: Int64($0)) }
            + (0..<10).map { Self.candidate("bob-\($0)", owner: "bob", seq: Int64(10 + $0)) }
        var spans: [UsageSpan] = []
        var now = Self.t0
        var order: [String] = []
        while let index = ClaimOrder.next(waiting, usage: ClaimOrder.usage(spans, now: now, policy: .default), now: now, policy: .default) {
            let ticket = waiting.remove(at: index).ticket
            order.append(ticket.owner ?? "")
            spans.append(UsageSpan(owner: ticket.owner, experiment: ticket.experiment, start: now, end: now + 60))
            now += 60
        }
        #expect(order == Array(repeating: ["ann", "bob"], count: 10).flatMap { $0 })
    }

    @Test func theShareWithLessGPUTimeGoesFirstAndOldTimeIsForgotten() {
        let waiting = [Self.candidate("ann", owner: "ann", seq: 1), Self.candidate("bob", owner: "bob", seq: 2)]
        // ann trained for 2 h an hour ago; bob for 1 h.
        var spans = [UsageSpan(owner: "ann", experiment: "x", start: Self.t0 - 3 * 3600, end: Self.t0 - 3600),
                     UsageSpan(owner: "bob", experiment: "x", start: Self.t0 - 2 * 3600, end: Self.t0 - 3600)]
        var usage = ClaimOrder.usage(spans, now: Self.t0, policy: .default)
        #expect(usage["u:ann"]?.seconds == 7200)
        #expect(ClaimOrder.next(waiting, usage: usage, now: Self.t0, policy: .default).map { waiting[$0].ticket.jobID } == "bob")
        // ann's time was two days ago: it no longer counts; bob is still training.
        spans = [UsageSpan(owner: "ann", experiment: "x", start: Self.t0 - 50 * 3600, end: Self.t0 - 48 * 3600),
                 UsageSpan(owner: "bob", experiment: "x", start: Self.t0 - 600, end: nil)]
        usage = ClaimOrder.usage(spans, now: Self.t0, policy: .default)
        #expect(usage["u:ann"] == nil)
        #expect(usage["u:bob"]?.seconds == 600)
        #expect(ClaimOrder.next(waiting, usage: usage, now: Self.t0, policy: .default).map { waiting[$0].ticket.jobID } == "ann")
    }

    @Test func fairShareByExperimentCountsTheExperimentNotTheUser() {
        let policy = SchedulingPolicy(fairShare: .experiment)
        let waiting = [Self.candidate("a", owner: "ann", experiment: "big", seq: 1), Self.candidate("b", owner: "ann", experiment: "small", seq: 2)]
        let spans = [UsageSpan(owner: "bob", experiment: "big", start: Self.t0 - 60, end: Self.t0)]
        let usage = ClaimOrder.usage(spans, now: Self.t0, policy: policy)
        #expect(ClaimOrder.next(waiting, usage: usage, now: Self.t0, policy: policy).map { waiting[$0].ticket.jobID } == "b")
        // By user, ann has used nothing: first in first out.
        let byUser = ClaimOrder.usage(spans, now: Self.t0, policy: .default)
        #expect(ClaimOrder.next(waiting, usage: byUser, now: Self.t0, policy: .default).map { waiting[$0].ticket.jobID } == "a")
    }

    @Test func aWaitingJobAgesPastNewerHigherOnes() {
        let policy = SchedulingPolicy(agingSeconds: 3600)
        let old = Self.candidate("old", priority: 1, queued: Self.t0, seq: 1)
        #expect(ClaimOrder.effectivePriority(old.ticket, now: Self.t0 + 3 * 3600 + 59, policy: policy) == 4)
        // Fresh priority 7 jobs keep arriving; after 6 h the priority 1 job
        // ties with them (and, older, goes first), after 7 h outranks them.
        for (hours, expected) in [(5.0, "new"), (5.99, "new"), (6.0, "old"), (7.0, "old")] {
            let now = Self.t0 + hours * 3600
            let waiting = [old, Self.candidate("new", priority: 7, queued: now, seq: 2)]
            #expect(ClaimOrder.next(waiting, usage: [:], now: now, policy: policy).map { waiting[$0].ticket.jobID } == expected, "after \(hours) h")
        }
        // Without aging it never does.
        let never = SchedulingPolicy(agingSeconds: nil)
        let waiting = [old, Self.candidate("new", priority: 7, queued: Self.t0, seq: 2)]
        #expect(ClaimOrder.next(waiting, usage: [:], now: Self.t0 + 1e6, policy: never).map { waiting[$0].ticket.jobID } == "new")
    }

    @Test func membersMayAskUpToSevenAdminsUpToNine() throws {
        try JobPriority.authorise(9, caller: nil)
        try JobPriority.authorise(9, caller: Caller(name: "ada", role: .admin))
        try JobPriority.authorise(7, caller: Caller(name: "mia", role: .member))
        do {
            try JobPriority.authorise(8, caller: Caller(name: "mia", role: .member))
            Issue.record("a member asked for priority 8")
        } catch {
            #expect(error.code == .forbidden)
            #expect(error.field == "priority")
            #expect(error.message.contains("priority 8 is above a member's limit of 7"), "\(error.message)")
            #expect(!error.message.contains("\n"))
        }
    }

    @Test(arguments: ["10", "-1", "high", "5.5", "true", "[9]"])
    func aPriorityOutsideZeroToNineIsRefused(value: String) {
        do {
            _ = try JobConfigParser(baseDirectory: nil) { _ in true }.parse("model: m.yaml\npriority: \(value)\ntrain: {data: /d/data.yaml}")
            Issue.record("priority \(value) was accepted")
        } catch {
            #expect(error.field == "priority")
            #expect(error.message.contains("from 0 (lowest) to 9 (highest)"), "\(error.message)")
        }
    }

    @Test func priorityDefaultsToFiveAndIsKeptOnTheJob() throws {
        let parser = JobConfigParser(baseDirectory: nil) { _ in true }
        let plain = try parser.parse("model: m.yaml\ntrain: {data: /d/data.yaml}")
        #expect(plain.priority == 5)
        let urgent = try parser.parse("model: m.yaml\npriority: 9\ntrain: {data: /d/data.yaml}")
        let job = Job(id: "j", config: urgent, redacted: urgent.json, createdAt: Self.t0)
        #expect(job.priority == 9)
        #expect(QueueTicket(job, at: Self.t0).priority == 9)
    }
}
