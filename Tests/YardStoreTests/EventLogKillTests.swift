import Foundation
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// The event log on disk, across a crash: 8 writers append to a SQLite
/// store in a child process (`yard-bench event-writer`, which prints each
/// event once its append returned), the test kills it with SIGKILL midway
/// and reopens the file. The log is 1...N with no gap and no repeat, holds
/// every acknowledged event under the number it was acknowledged with, and
/// the next append is N+1.
@Suite("Event log across kill -9")
struct EventLogKillTests {
    @Test(arguments: YardDatabase.Sync.allCases)
    func eightWritersKilledMidwayLeaveAGapFreeLogWithEveryAcknowledgedEvent(sync: YardDatabase.Sync) async throws {
        let dir = try TemporaryDirectory("event-kill")
        defer { dir.remove() }
        let bench = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("YardBench").path
        try #require(FileManager.default.isExecutableFile(atPath: bench), "no YardBench at \(bench): swift build --build-tests builds it")
        let file = dir.file("yard.sqlite")
        let acknowledged = dir.file("acknowledged.txt")
        _ = FileManager.default.createFile(atPath: acknowledged, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: acknowledged))
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: bench)
        writer.arguments = ["event-writer", file, "8", sync.rawValue]
        writer.standardOutput = output
        try writer.run()
        try await eventually("the writer to acknowledge 2000 events", timeout: .seconds(120)) {
            ((try? String(contentsOfFile: acknowledged, encoding: .utf8))?.split(separator: "\n").count ?? 0) > 2000
        }
        kill(writer.processIdentifier, SIGKILL)
        writer.waitUntilExit()
        try output.close()
        #expect(writer.terminationReason == .uncaughtSignal)

        // Whole lines only: the writer may die in the middle of printing one.
        let said = try String(contentsOfFile: acknowledged, encoding: .utf8)
        let told = said.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { $0.split(separator: " ").compactMap { Int($0) } }
        #expect(told.count > 2000 && told.allSatisfy { $0.count == 3 })

        let store = SQLiteJobStore(database: try YardDatabase(path: file))
        let log = try await store.events(after: 0, limit: 10_000_000, filter: .all)
        #expect(!log.isEmpty)
        #expect(log.map(\.id) == Array(1...Int64(log.count)), "a gap, a repeat or a reorder in the log after the kill")
        let stored = Dictionary(log.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var lost: [String] = []
        for line in told where line.count == 3 {
            let event = stored[Int64(line[2])]
            if event?.payload["task"]?.intValue != line[0] || event?.payload["n"]?.intValue != line[1] { lost.append("\(line)") }
        }
        #expect(lost.isEmpty, "acknowledged but not in the log as acknowledged: \(lost.prefix(5))")
        // Each writer's events are in the order it appended them, with none skipped.
        for task in 0..<8 {
            let mine = log.filter { $0.jobID == "writer-\(task)" }.compactMap { $0.payload["n"]?.intValue }
            #expect(mine == Array(0..<mine.count), "writer \(task)")
        }
        let next = try await store.appendEvent(.worker, id: "after", type: "tick", payload: [:])
        #expect(next.id == Int64(log.count) + 1, "the log did not go on at N+1")
    }

    /// `--sync full` reaches the connection that commits (GRDB sets NORMAL
    /// on the writer when it opens it in WAL mode, after any prepare hook).
    @Test func theWriterCommitsWithTheChosenSync() async throws {
        let dir = try TemporaryDirectory("event-sync")
        defer { dir.remove() }
        let normal = try YardDatabase(path: dir.file("normal.sqlite"))
        let full = try YardDatabase(path: dir.file("full.sqlite"), sync: .full)
        #expect(try await normal.writerSynchronous() == 1)
        #expect(try await full.writerSynchronous() == 2)
        // And it stays so after writes through the store (the event log's group commit shares the writer).
        let store = SQLiteJobStore(database: full)
        _ = try await store.appendEvent(.worker, id: "w", type: "tick", payload: [:])
        #expect(try await full.writerSynchronous() == 2)
    }
}
