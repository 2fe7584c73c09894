import Foundation
import Synchronization
import YardDomain
import YardQueue
import YardServer
import YardStore

/// `yard-bench http-metrics [REQUESTS] [ROUNDS]` (bench/http_metrics.sh):
/// what the HTTP metrics middleware costs. Two servers over one SQLite
/// store, one with the middleware and one without (the baseline, in the
/// same process and run); each round sends REQUESTS keep-alive requests
/// over 4 connections to each server in turn (alternating which goes
/// first), for `GET /health` (the cheapest handler: the largest relative
/// cost) and `GET /api/jobs/{id}` (a store read). Prints requests/s and
/// p50/p99 per server and route, and the medians' ratios.
enum HTTPMetricsBench {
    static let connections = 4

    static func run(requests: Int, rounds: Int) async throws {
        let folder = try BenchFolder("http-metrics")
        defer { folder.remove() }
        let database = try YardDatabase(path: folder.file("yard.sqlite"))
        let store = SQLiteJobStore(database: database)
        let config = try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntask_id: bench-1\ntrain: {data: /d/data.yaml, epochs: 1}\n")
        try await store.insert(Job(id: "bench-1", config: config, redacted: Redaction.redact(config.json), createdAt: Date()), secrets: [:])
        let plain = try await BenchServer.start(store: store, database: database, folder: folder.file("plain"), httpMetrics: false)
        let counted = try await BenchServer.start(store: store, database: database, folder: folder.file("counted"), httpMetrics: true)
        defer {
            plain.task.cancel()
            counted.task.cancel()
        }
        // What recording one request costs, alone: the middleware's own work without the network's noise.
        let metrics = YardMetrics()
        let calls = 1_000_000
        let routes = ["/api/jobs/{id}", "/api/jobs", "/health", "/api/events"]
        let started = Monotonic.nanoseconds()
        for i in 0..<calls {
            metrics.request(route: routes[i & 3], method: "GET", status: 200, duration: .microseconds(i & 1023))
        }
        print(String(format: "recording one request (counter + histogram, cached series): %.0f ns (%d calls)",
                     Double(Monotonic.nanoseconds() - started) / Double(calls), calls))
        print("\(requests) keep-alive requests per round over \(connections) connections, \(rounds) rounds, alternating servers")
        for path in ["/health", "/api/jobs/bench-1"] {
            var rates: [String: [Double]] = [:], p50: [String: [Double]] = [:], p99: [String: [Double]] = [:]
            _ = try await load(port: plain.port, path: path, requests: requests / 4)  // warm-up, both
            _ = try await load(port: counted.port, path: path, requests: requests / 4)
            for round in 0..<rounds {
                let order = round % 2 == 0 ? [("without", plain.port), ("with", counted.port)] : [("with", counted.port), ("without", plain.port)]
                for (name, port) in order {
                    let (seconds, latencies) = try await load(port: port, path: path, requests: requests)
                    rates[name, default: []].append(Double(requests) / seconds)
                    p50[name, default: []].append(latencies.percentile(0.5))
                    p99[name, default: []].append(latencies.percentile(0.99))
                }
            }
            for name in ["without", "with"] {
                print(String(format: "GET %-18@ %-7@ middleware: %8.0f req/s (rounds %@)  p50 %.3f ms  p99 %.3f ms", path as NSString, name as NSString,
                             rates[name]!.percentile(0.5), rates[name]!.map { String(format: "%.0f", $0) }.joined(separator: ", ") as NSString,
                             p50[name]!.percentile(0.5), p99[name]!.percentile(0.5)))
            }
            print(String(format: "GET %-18@ with/without: throughput %.3fx, p50 %.3fx, p99 %.3fx", path as NSString,
                         rates["with"]!.percentile(0.5) / rates["without"]!.percentile(0.5),
                         p50["with"]!.percentile(0.5) / p50["without"]!.percentile(0.5), p99["with"]!.percentile(0.5) / p99["without"]!.percentile(0.5)))
        }
        await plain.group.triggerGracefulShutdown()
        await counted.group.triggerGracefulShutdown()
    }

    /// `requests` GETs over `connections` keep-alive connections, each on a
    /// thread of its own (blocking sockets off the server's threads): the
    /// wall time and each request's latency in ms.
    static func load(port: Int, path: String, requests: Int) async throws -> (Double, [Double]) {
        let perConnection = max(1, requests / connections)
        let started = Monotonic.nanoseconds()
        let results: [Result<[Double], any Error>] = await withCheckedContinuation { done in
            let collected = Mutex<[Result<[Double], any Error>]>([])
            for _ in 0..<connections {
                let thread = Thread {
                    let result = Result { try keepAlive(port: port, path: path, count: perConnection) }
                    let all = collected.withLock { collected -> [Result<[Double], any Error>]? in
                        collected.append(result)
                        return collected.count == connections ? collected : nil
                    }
                    if let all { done.resume(returning: all) }
                }
                thread.start()
            }
        }
        let seconds = Double(Monotonic.nanoseconds() - started) / 1e9
        return (seconds, try results.flatMap { try $0.get() })
    }

    /// One connection's requests, one after the other; each response read whole (Content-Length).
    static func keepAlive(port: Int, path: String, count: Int) throws -> [Double] {
        let fd = try BenchServer.connectLoopback(port: port)
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var pending: [UInt8] = []
        for _ in 0..<count {
            let start = Monotonic.nanoseconds()
            guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else {
                throw YardError(.unavailable, "write to 127.0.0.1:\(port) failed")
            }
            while true {
                if let end = headEnd(pending) {
                    let head = String(decoding: pending[..<end], as: UTF8.self)
                    guard head.hasPrefix("HTTP/1.1 200") else { throw YardError(.unavailable, "\(path): \(head.prefix(40))") }
                    let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                    if pending.count >= end + 4 + length {
                        pending.removeFirst(end + 4 + length)
                        break
                    }
                }
                let n = read(fd, &buffer, buffer.count)
                guard n > 0 else { throw YardError(.unavailable, "127.0.0.1:\(port) closed the connection") }
                pending.append(contentsOf: buffer[0..<n])
            }
            latencies.append(Double(Monotonic.nanoseconds() - start) / 1e6)
        }
        return latencies
    }

    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
        return nil
    }
}
