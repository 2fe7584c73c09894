import Testing
import YardDomain

@Suite("Engine events and job ids")
struct EngineEventTests {
    @Test func decodesAnEpochEvent() throws {
        let line = #"{"event":"epoch","epoch":2,"epochs":3,"metrics":{"metrics/mAP50(B)":0.5},"losses":{"train/box_loss":1.5},"lr":{"lr/pg0":0.01},"seconds":1.25}"#
        let event = try #require(try EngineEvent.decode(line: line))
        #expect(event.kind == .epoch)
        #expect(event.epoch == 2)
        #expect(event.numbers == ["metrics/mAP50(B)": 0.5, "train/box_loss": 1.5, "lr/pg0": 0.01])
        #expect(event.seconds == 1.25)
    }

    @Test func blankLinesAreSkippedAndGarbageIsAnError() throws {
        #expect(try EngineEvent.decode(line: "   ") == nil)
        #expect(throws: YardError.self) { try EngineEvent.decode(line: "not json") }
        #expect(throws: YardError.self) { try EngineEvent.decode(line: #"{"event":"mystery"}"#) }
        #expect(throws: YardError.self) { try EngineEvent.decode(line: #"{"epoch":1}"#) }
    }

    @Test func generatedIDsAreValidAndCarryTheDate() {
        let id = JobID.generate(epochSeconds: 1_795_309_338, random: 0xABC)
        #expect(id == "job-20261122-010218-000abc")
        #expect(JobID.isValid(id))
    }

    @Test(arguments: ["", ".hidden", "a/b", "a b", "../x", String(repeating: "x", count: 129), "é"])
    func unsafeIDsAreRejected(id: String) {
        #expect(!JobID.isValid(id))
    }
}
