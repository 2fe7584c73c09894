// yard-bench: the Swift half of the benchmarks.
//   yard-bench TRACKING_URI EXPERIMENT POINTS (bench/mlflow_metrics.sh): logs
//     POINTS metric points through the MLflow tracker (spooled, replayed in
//     batches) into a new run and prints {"run_id", "seconds", "points"}.
//   yard-bench streams [EVENTS] [IDLE_SECONDS] (bench/streams.sh): SSE latency
//     with 1 and 100 clients, server CPU with 100 idle clients.
import Foundation
import Logging
import YardDomain
import YardStore
import YardTracker

let arguments = CommandLine.arguments
if arguments.count >= 2, arguments[1] == "streams" {
    let events = arguments.count > 2 ? Int(arguments[2]) ?? 200 : 200
    let idle = arguments.count > 3 ? Int(arguments[3]) ?? 10 : 10
    try await StreamBench.run(events: events, idleSeconds: idle)
    exit(0)
}
guard arguments.count == 4, let points = Int(arguments[3]), points > 0 else {
    FileHandle.standardError.write(Data("usage: yard-bench TRACKING_URI EXPERIMENT POINTS\n".utf8))
    exit(2)
}
let (uri, experiment) = (arguments[1], arguments[2])
let folder = NSTemporaryDirectory() + "yard-bench-\(getpid())"
defer { try? FileManager.default.removeItem(atPath: folder) }

let store = MemoryJobStore()
let parser = JobConfigParser { _ in true }
let config = try parser.parse("model: yolov8n.yaml\nexperiment: \(experiment)\ntrain: {data: /d.yaml}\nmlflow: {MLFLOW_TRACKING_URI: \(uri)}")
var job = Job(id: "bench-\(getpid())", config: config, redacted: config.json, createdAt: Date())
job.attempts = 1
try await store.insert(job, secrets: [:])
let spool = TrackingSpool(directory: folder, logger: Logger(label: "bench"))
let tracker = MLflowTracker(spool: spool, store: store, defaultURI: nil)

let perEpoch = 10
let clock = ContinuousClock()
let start = clock.now
_ = try await tracker.startRun(job)
for epoch in 1...(points / perEpoch) {
    let metrics = Dictionary(uniqueKeysWithValues: (0..<perEpoch).map { ("bench/m\($0)", Double(epoch) * 0.001 + Double($0)) })
    try await tracker.logEpoch(job, EpochRecord(jobID: job.id, epoch: epoch, metrics: metrics.filter { $0.key != "bench/m9" }, seconds: 0))
}
job.state = .succeeded
try await tracker.endRun(job)
while true {
    let clean = await spool.replayAll()
    let pending = await spool.pendingJobs()
    if clean && pending.isEmpty { break }
    try await Task.sleep(for: .milliseconds(100))
}
let seconds = Double((clock.now - start).components.attoseconds) / 1e18 + Double((clock.now - start).components.seconds)
let run = try await MLflowClient(trackingURI: uri).findRun(experimentID: try await MLflowClient(trackingURI: uri).experimentID(named: experiment),
                                                           tag: "trainyard.job_id", value: job.id)
// Each epoch is nine bench metrics plus the tracker's own epoch_seconds.
print("{\"run_id\": \"\(run?.runID ?? "")\", \"seconds\": \(seconds), \"points\": \(points / perEpoch * perEpoch)}")
