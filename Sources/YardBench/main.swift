// yard-bench: the Swift half of the benchmarks.
//   yard-bench TRACKING_URI EXPERIMENT POINTS (bench/mlflow_metrics.sh): the
//     MLflow tracker live, replaying a backlog, and spooling from 8 jobs.
//   yard-bench spool-writer DIR TASKS OPS: the kill -9 test's writer.
//   yard-bench event-writer FILE TASKS [normal|full]: the event log's kill -9 test's writer.
//   yard-bench streams [EVENTS] [IDLE_SECONDS] (bench/streams.sh): SSE latency
//     with 1 and 100 clients, server CPU with 100 idle clients.
//   yard-bench events [EVENTS_PER_WRITER] [SECONDS] (bench/events.sh): event log
//     appends with 8 writers against bare GRDB inserts, /api/events latency.
//   yard-bench sse-readers PORT PATH COUNT EXPECT SECONDS: that bench's readers,
//     in a process of their own.
//   yard-bench store-scale [JOBS] [EPOCHS_PER_JOB] (bench/store_scale.sh): GET
//     /api/jobs and /api/jobs/{id} p50/p99 on a generated store, /health beside.
//   yard-bench dashboard-server [JOBS] (bench/dashboard.sh): two servers (10 jobs,
//     JOBS jobs) for the browser half, epochs recorded on command.
//   yard-bench http-metrics [REQUESTS] [ROUNDS] (bench/http_metrics.sh): keep-alive
//     requests against a server with and without the HTTP metrics middleware.
//   yard-bench backup-pause DATA YARD_BIN (bench/backup.sh): the longest pause
//     `yard backup` causes to a training's epoch events.
//   yard-bench redis-queue URL [JOBS] [C_BASELINE] (bench/redis_queue.sh): the Redis queue
//     path against raw stream round trips.
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
if arguments.count >= 2, arguments[1] == "events" {
    try await EventLogBench.run(perWriter: arguments.count > 2 ? Int(arguments[2]) ?? 2000 : 2000,
                                seconds: arguments.count > 3 ? Int(arguments[3]) ?? 5 : 5)
    exit(0)
}
if arguments.count >= 2, arguments[1] == "http-metrics" {
    try await HTTPMetricsBench.run(requests: arguments.count > 2 ? Int(arguments[2]) ?? 20_000 : 20_000,
                                   rounds: arguments.count > 3 ? Int(arguments[3]) ?? 5 : 5)
    exit(0)
}
if arguments.count == 7, arguments[1] == "sse-readers", let port = Int(arguments[2]), let count = Int(arguments[4]),
   let expect = Int(arguments[5]), let seconds = Int(arguments[6]) {
    try SSEReaders.run(port: port, path: arguments[3], count: count, expect: expect, seconds: seconds)
    exit(0)
}
if arguments.count >= 2, arguments[1] == "store-scale" {
    try await StoreScaleBench.run(jobs: arguments.count > 2 ? Int(arguments[2]) ?? 100_000 : 100_000,
                                  epochsPerJob: arguments.count > 3 ? Int(arguments[3]) ?? 10 : 10)
    exit(0)
}
if arguments.count >= 2, arguments[1] == "dashboard-server" {
    try await DashboardBench.run(jobs: arguments.count > 2 ? Int(arguments[2]) ?? 100_000 : 100_000)
    exit(0)
}
if arguments.count == 4, arguments[1] == "backup-pause" {
    try await BackupPauseBench.run(data: arguments[2], yard: arguments[3])
    exit(0)
}
if arguments.count >= 3, arguments[1] == "redis-queue" {
    try await QueueBench.run(url: arguments[2], jobs: arguments.count > 3 ? Int(arguments[3]) ?? 20_000 : 20_000,
                             external: arguments.count > 4 ? Double(arguments[4]) : nil)
    exit(0)
}
if arguments.count >= 4, arguments[1] == "event-path", let jobs = Int(arguments[3]) {
    // One run of the whole path (profiling): URL JOBS [WORKERS].
    try await EventPathBench.run(url: arguments[2], jobs: jobs, workers: arguments.count > 4 ? Int(arguments[4]) ?? 1 : 1, baseline: .nan)
    exit(0)
}
if (4...5).contains(arguments.count), arguments[1] == "event-writer", let tasks = Int(arguments[3]),
   let sync = arguments.count == 5 ? YardDatabase.Sync(rawValue: arguments[4]) : .normal {
    try await EventWriter.run(path: arguments[2], tasks: tasks, sync: sync)
    exit(0)
}
if arguments.count == 5, arguments[1] == "spool-writer", let tasks = Int(arguments[3]), let ops = Int(arguments[4]) {
    try await SpoolWriter.run(directory: arguments[2], tasks: tasks, ops: ops)
    exit(0)
}
guard arguments.count == 4, let points = Int(arguments[3]), points > 0 else {
    FileHandle.standardError.write(Data("usage: yard-bench TRACKING_URI EXPERIMENT POINTS | streams [EVENTS] [IDLE] | redis-queue URL [JOBS] [C_BASELINE] | spool-writer DIR TASKS OPS\n".utf8))
    exit(2)
}
try await TrackingBench.run(uri: arguments[1], experiment: arguments[2], points: points)
