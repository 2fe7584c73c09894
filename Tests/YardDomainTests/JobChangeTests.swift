import Foundation
import Testing
import YardDomain

/// Job changes are data: applied the same way wherever they arrive, and
/// unchanged by a trip through JSON (the Redis seam sends them).
@Suite("Job changes")
struct JobChangeTests {
    func job() throws -> Job {
        let config = try JobConfigParser { _ in true }.parse("task_id: j1\nmodel: yolo11n.pt\ntrain: {data: /d.yaml, epochs: 3}\n")
        return Job(id: "j1", config: config, redacted: config.json, createdAt: Date(timeIntervalSince1970: 1))
    }

    @Test func anAttemptCountsAndKeepsTheFirstStart() throws {
        var job = try job()
        JobChange(attemptStarted: .init(worker: "gpu0", time: Date(timeIntervalSince1970: 10))).apply(to: &job)
        JobChange(attemptStarted: .init(worker: "gpu1", time: Date(timeIntervalSince1970: 20))).apply(to: &job)
        #expect(job.attempts == 2)
        #expect(job.worker == "gpu1")
        #expect(job.startedAt == Date(timeIntervalSince1970: 10))
    }

    @Test func nilFieldsLeaveTheJobAlone() throws {
        var job = try job()
        JobChange(device: "cpu", saveDir: "/runs/j1", epoch: 1, epochs: 3, bestWeights: "/runs/j1/weights/best.pt").apply(to: &job)
        JobChange(epoch: 2).apply(to: &job)
        #expect(job.device == "cpu")
        #expect(job.epoch == 2)
        #expect(job.epochs == 3)
        #expect(job.bestWeights == "/runs/j1/weights/best.pt")
        #expect(job.lastWeights == nil)
    }

    @Test func aChangeSurvivesJSON() throws {
        let change = JobChange(attemptStarted: .init(worker: "w", time: Date(timeIntervalSince1970: 1_800_000_000.25)), runID: "r",
                               versions: ["torch": "2.5"], fitness: 0.5, finalMetrics: ["metrics/mAP50(B)": 0.9])
        let decoded = try JSONDecoder().decode(JobChange.self, from: JSONEncoder().encode(change))
        #expect(decoded == change)
    }
}
