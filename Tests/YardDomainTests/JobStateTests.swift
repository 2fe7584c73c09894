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

    @Test func nothingLeavesSucceeded() {
        for next in JobState.allCases { #expect(!JobState.succeeded.canMove(to: next)) }
    }

    @Test func terminalAndActive() {
        #expect(Set(JobState.allCases.filter(\.isTerminal)) == [.succeeded, .failed, .stopped])
        #expect(Set(JobState.allCases.filter(\.isActive)) == [.running, .stopping])
    }
}
