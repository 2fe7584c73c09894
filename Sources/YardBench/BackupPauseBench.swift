import Foundation
import YardDomain
import YardStore

/// `yard-bench backup-pause DATA YARD_BIN` (bench/backup.sh, second half):
/// the pause `yard backup` causes to a training's epoch events. DATA holds
/// the generated files (runs, weights, a dataset); this makes the store in
/// it as `yard up` does (WAL, synchronous=NORMAL) with 20,000 finished jobs
/// of 10 epochs and one running job, then records an epoch of that job
/// every 20 ms as a worker's reports do (its epoch row, then its `epoch`
/// event): first for 5 s alone (the baseline), then while the real `yard
/// backup` runs in a process of its own over the same data dir. For each
/// epoch, the delay is when its event entered the log minus when it was due;
/// a pause is that delay. Prints p50, p99 and the longest, for both.
/// Goal: no pause over 100 ms.
enum BackupPauseBench {
    static let interval = Duration.milliseconds(20)

    static func run(data: String, yard: String) async throws {
        let database = try YardDatabase(path: data + "/yard.sqlite")
        try await StoreScaleBench.generate(database, jobs: 20_000, epochsPerJob: 10)
        let store = SQLiteJobStore(database: database)
        try await StoreScaleBench.insertRunning(store, id: "live-0", epochs: 100_000)
        var epoch = 0

        let alone = try await record(store, epoch: &epoch) { ContinuousClock.now < $0 + .seconds(5) }
        report("training alone (5 s)", alone)

        let output = NSTemporaryDirectory() + "/yard-bench-pause-\(getpid()).tar.zst"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: yard)
        process.arguments = ["backup", output, "--data-dir", data, "--compression", "zstd"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let started = ContinuousClock.now
        try process.run()
        defer { unlink(output) }
        let during = try await record(store, epoch: &epoch) { _ in process.isRunning }
        let took = ContinuousClock.now - started
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw YardError(.internal, "yard backup exited with status \(process.terminationStatus)") }
        report(String(format: "during yard backup (%.1f s)", took.timeInterval), during)
        let longest = during.max() ?? 0
        say(String(format: "longest pause during the backup: %.1f ms (goal <= 100 ms)", longest))
    }

    /// Records an epoch every `interval` while `more(start)`; each epoch's delay in ms.
    static func record(_ store: SQLiteJobStore, epoch: inout Int, while more: (ContinuousClock.Instant) -> Bool) async throws -> [Double] {
        let start = ContinuousClock.now
        var due = start
        var delays: [Double] = []
        while more(start) {
            epoch += 1
            let metrics: [String: Double] = ["metrics/mAP50(B)": 0.5, "train/box_loss": 1.0]
            try await store.recordEpoch(EpochRecord(jobID: "live-0", epoch: epoch, metrics: metrics, seconds: 0.02))
            _ = try await store.appendEvent(jobID: "live-0", type: "epoch", payload: [
                "epoch": .int(epoch), "epochs": 100_000, "metrics": ["metrics/mAP50(B)": 0.5], "losses": ["train/box_loss": 1.0],
            ])
            delays.append((ContinuousClock.now - due).timeInterval * 1000)
            due += interval
            if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) } else { due = ContinuousClock.now }
        }
        return delays
    }

    static func report(_ label: String, _ delays: [Double]) {
        let sorted = delays.sorted()
        guard !sorted.isEmpty else { return say("\(label): no epochs") }
        func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))] }
        say(String(format: "%@: %d epochs, delay p50 %.2f ms  p99 %.2f ms  longest %.1f ms", label, sorted.count, at(0.5), at(0.99), sorted.last!))
    }

    static func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
}
