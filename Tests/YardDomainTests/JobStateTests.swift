import Testing
import YardDomain

@Suite("Job state machine")
struct JobStateTests {
    @Test func theHappyPathIsLegal() {
        #expect(JobState.queued.canMove(to: .running))
        #expect(JobState.running.canMove(to: .succeeded))
        #expect(JobState.running.canMove(to: .stopping))
        #expect(JobState.stopping.canMove(to: .stopped))
        #expect(JobState.stopped.canMove(to: .queued))
        #expect(JobState.failed.canMove(to: .queued))
        #expect(JobState.running.canMove(to: .queued), "an interrupted job is queued again")
    }

    @Test(arguments: [
        (JobState.succeeded, JobState.queued), (.succeeded, .running), (.succeeded, .stopping), (.failed, .running),
        (.stopped, .running), (.queued, .succeeded), (.queued, .failed), (.stopped, .succeeded), (.failed, .stopping),
    ])
    func illegalTransitionsAreRejected(from: JobState, to: JobState) {
        #expect(!from.canMove(to: to))
        #expect(throws: YardError.self) { try from.checkMove(to: to, job: "j1") }
    }

    @Test func nothingLeavesSucceededOrPruned() {
        for next in JobState.allCases {
            #expect(!JobState.succeeded.canMove(to: next))
            #expect(!JobState.pruned.canMove(to: next), "a pruned trial is final: \(next)")
        }
        #expect(JobState.stopping.canMove(to: .pruned) && JobState.running.canMove(to: .pruned) && JobState.queued.canMove(to: .pruned))
    }

    /// The stop a pruner causes ends the trial pruned, with the pruner's reason.
    @Test func aStopOfATrialBeingPrunedEndsItPruned() throws {
        let config = try JobConfigParser { _ in true }.parse("model: m.yaml\ntrain: {data: /d.yaml, epochs: 3}")
        var job = Job(id: "t1", config: config, redacted: config.json, createdAt: .init(timeIntervalSince1970: 0))
        try job.move(to: .running, message: "started", at: .init(timeIntervalSince1970: 1))
        try job.move(to: .stopping, message: "stop requested", at: .init(timeIntervalSince1970: 2))
        var plain = job
        try plain.move(to: .stopped, message: "stopped after epoch 1", at: .init(timeIntervalSince1970: 3))
        #expect(plain.state == .stopped)
        job.pruning = "pruned at epoch 1: fitness 0.1 below the median 0.4"
        try job.move(to: .stopped, message: "stopped after epoch 1", at: .init(timeIntervalSince1970: 3))
        #expect(job.state == .pruned && job.message == "pruned at epoch 1: fitness 0.1 below the median 0.4")
        #expect(job.finishedAt == .init(timeIntervalSince1970: 3))
    }

    @Test func terminalAndActive() {
        #expect(Set(JobState.allCases.filter(\.isTerminal)) == [.succeeded, .failed, .stopped, .pruned])
        #expect(Set(JobState.allCases.filter(\.isActive)) == [.running, .stopping])
    }
}
