import Foundation
import Logging
import Testing
import YardDomain
import YardTestSupport
import YardTracker

/// The spool's group commit: operations that arrive together share one
/// write and fsync, and an append that returned is on disk, whatever
/// happens to the process next.
@Suite("Tracking spool group commit")
struct SpoolGroupCommitTests {
    static func lines(_ path: String) -> [JSONValue] {
        let data = FileManager.default.contents(atPath: path) ?? Data()
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0)) }
    }

    @Test func appendsThatArriveTogetherShareACommitAndKeepEachJobsOrder() async throws {
        let dir = try TemporaryDirectory("spool-group")
        defer { dir.remove() }
        let spool = TrackingSpool(directory: dir.path, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<50 {
                group.addTask {
                    for step in 0..<4 { try await spool.append(jobID: "job\(writer % 5)", ["op": "metrics", "step": .int(step), "writer": .int(writer)]) }
                }
            }
            try await group.waitForAll()
        }
        let commits = await spool.commits
        #expect(commits < 200, "200 appends, \(commits) commits: nothing was grouped")
        for job in 0..<5 {
            let ops = Self.lines(dir.file("job\(job).jsonl"))
            #expect(ops.count == 40)
            // Each writer's operations are in the order it appended them.
            for writer in stride(from: job, to: 50, by: 5) {
                #expect(ops.filter { $0["writer"]?.intValue == writer }.map { $0["step"]?.intValue } == [0, 1, 2, 3])
            }
        }
    }

    @Test func everyAcknowledgedOperationSurvivesKillMinus9() async throws {
        let dir = try TemporaryDirectory("spool-kill")
        defer { dir.remove() }
        let bench = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("YardBench").path
        try #require(FileManager.default.isExecutableFile(atPath: bench), "no YardBench at \(bench): swift build --build-tests builds it")
        let acknowledged = dir.file("acknowledged.txt")
        FileManager.default.createFile(atPath: acknowledged, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: acknowledged))
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: bench)
        writer.arguments = ["spool-writer", dir.file("spool"), "16", "1000000"]
        writer.standardOutput = output
        try writer.run()
        try await eventually("the writer to acknowledge 3000 operations", timeout: .seconds(60)) {
            ((try? String(contentsOfFile: acknowledged, encoding: .utf8))?.split(separator: "\n").count ?? 0) > 3000
        }
        kill(writer.processIdentifier, SIGKILL)
        writer.waitUntilExit()
        try output.close()
        #expect(writer.terminationReason == .uncaughtSignal)

        // Whole lines only: the writer may die in the middle of printing one.
        let said = try String(contentsOfFile: acknowledged, encoding: .utf8)
        let told = Set(said.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init))
        #expect(told.count > 3000)
        let spooled = Self.lines(dir.file("spool/job.jsonl")).compactMap { op -> String? in
            guard let task = op["task"]?.intValue, let seq = op["seq"]?.intValue else { return nil }
            return "\(task) \(seq)"
        }
        #expect(Set(spooled).count == spooled.count, "an operation was spooled twice")
        let lost = told.subtracting(spooled)
        #expect(lost.isEmpty, "acknowledged but not spooled: \(lost.prefix(5))")
    }

    @Test func aLineCutShortByACrashIsRemovedBeforeTheNextAppend() async throws {
        let dir = try TemporaryDirectory("spool-cut")
        defer { dir.remove() }
        try dir.write("j.jsonl", #"{"op": "metrics", "step": 1}"# + "\n" + #"{"op": "metrics", "st"#)
        let spool = TrackingSpool(directory: dir.path, logger: Logger(label: "test"))
        try await spool.append(jobID: "j", ["op": "metrics", "step": 2])
        let text = try String(contentsOfFile: dir.file("j.jsonl"), encoding: .utf8)
        #expect(Self.lines(dir.file("j.jsonl")).map { $0["step"]?.intValue } == [1, 2], "\(text)")
        #expect(text.split(separator: "\n").count == 2 && text.hasSuffix("\n"), "\(text)")
    }
}
