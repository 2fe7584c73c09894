import Foundation
import YardDomain
import YardStore

/// `yard-bench dashboard-server JOBS` (bench/dashboard.sh): the server half of
/// the dashboard's benchmark. Two servers on 127.0.0.1, each over its own
/// generated SQLite store: one with 10 jobs (the baseline) and one with JOBS
/// (10 epoch rows each), every store with a running job `live-0` whose page
/// the browser opens. Prints `baseline PORT` and `scaled PORT`, then reads
/// commands on stdin: `epoch SERVER N` records epoch N of `live-0` on that
/// server as a worker does (its epoch row, then its `epoch` event) and
/// prints `event SERVER N UNIX_MS`, the time the event entered the log; `quit` ends.
enum DashboardBench {
    struct Side {
        let store: SQLiteJobStore
        let server: BenchServer
        let folder: BenchFolder
    }

    static func run(jobs: Int) async throws {
        let baseline = try await side("dash-10", jobs: 10)
        let scaled = try await side("dash-scaled", jobs: jobs)
        defer {
            baseline.server.task.cancel()
            scaled.server.task.cancel()
            baseline.folder.remove()
            scaled.folder.remove()
        }
        say("baseline \(baseline.server.port)")
        say("scaled \(scaled.server.port)")
        while let line = readLine() {
            let words = line.split(separator: " ")
            if words.first == "quit" { break }
            guard words.count == 3, words[0] == "epoch", let epoch = Int(words[2]) else { continue }
            let side = words[1] == "baseline" ? baseline : scaled
            let metrics: [String: Double] = ["metrics/mAP50(B)": min(1, Double(epoch) / 100), "train/box_loss": 2 / Double(epoch)]
            try await side.store.recordEpoch(EpochRecord(jobID: "live-0", epoch: epoch, metrics: metrics, seconds: 1))
            let event = try await side.store.appendEvent(jobID: "live-0", type: "epoch", payload: [
                "epoch": .int(epoch), "epochs": 1000,
                "metrics": ["metrics/mAP50(B)": .double(metrics["metrics/mAP50(B)"]!)],
                "losses": ["train/box_loss": .double(metrics["train/box_loss"]!)],
            ])
            say("event \(words[1]) \(epoch) \(Int((event.time.timeIntervalSince1970 * 1000).rounded()))")
        }
        await baseline.server.group.triggerGracefulShutdown()
        await scaled.server.group.triggerGracefulShutdown()
    }

    /// One line on stdout, unbuffered (the browser half waits for it).
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func side(_ name: String, jobs: Int) async throws -> Side {
        let folder = try BenchFolder(name)
        let database = try YardDatabase(path: folder.file("yard.sqlite"))
        try await StoreScaleBench.generate(database, jobs: jobs, epochsPerJob: 10)
        let store = SQLiteJobStore(database: database)
        try await StoreScaleBench.insertRunning(store, id: "live-0", epochs: 1000)
        let server = try await BenchServer.start(store: store, database: database, folder: folder.path)
        return Side(store: store, server: server, folder: folder)
    }
}
