import Foundation
import Synchronization
import YardDomain
import YardStore

/// `yard-bench event-writer FILE TASKS [normal|full]`: a test aid for the event log's
/// kill -9 contract test. TASKS concurrent writers append events to the
/// SQLite store at FILE, without end, each printing `TASK N SEQ` (one write
/// per line) once its append has returned, that is once the event is
/// durable. The test kills it midway and reads the file back.
enum EventWriter {
    static func run(path: String, tasks: Int, sync: YardDatabase.Sync) async throws {
        let store = SQLiteJobStore(database: try YardDatabase(path: path, sync: sync))
        let out = Lines()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    var n = 0
                    while true {
                        let event = try await store.appendEvent(.worker, id: "writer-\(task)", type: "tick", payload: ["task": .int(task), "n": .int(n)])
                        out.print("\(task) \(n) \(event.id)\n")
                        n += 1
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Whole lines to standard output, one write each, from any task.
    final class Lines: Sendable {
        private let lock = Mutex(())

        func print(_ line: String) {
            let bytes = Array(line.utf8)
            lock.withLock { _ in _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) } }
        }
    }
}
