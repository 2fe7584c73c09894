import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import YardArtifacts
import YardDomain
import YardEngine
import YardQueue
import YardServer
import YardStore

/// A `Yard` over a bench's store, serving on a free port of 127.0.0.1 with
/// its logger quiet (the server's own shutdown notes are not results).
struct BenchServer {
    let yard: Yard
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>

    static func start(store: SQLiteJobStore, database: YardDatabase, folder: String, httpMetrics: Bool = true) async throws -> BenchServer {
        var options = YardOptions()
        options.dataDirectory = folder
        options.port = 0
        options.httpMetrics = httpMetrics
        let yard = Yard(options: options, store: store, queue: SQLiteJobQueue(database: database),
                        artifacts: LocalArtifactStore(root: folder + "/artifacts"),
                        engine: EngineEnvironment(python: "/nonexistent", engineDirectory: "/nonexistent", ultralyticsDirectory: folder))
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let (ports, announce) = AsyncStream.makeStream(of: Int.self)
        let app = yard.buildApplication(logger: logger) { announce.yield($0) }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let task = Task { try await group.run() }
        var next = ports.makeAsyncIterator()
        guard let port = await next.next() else {
            task.cancel()
            throw YardError(.unavailable, field: "port", "the bench server did not start")
        }
        return BenchServer(yard: yard, port: port, group: group, task: task)
    }

    /// One GET on a fresh connection (`Connection: close`): the status code.
    static func get(port: Int, path: String) throws -> Int {
        let fd = try connectLoopback(port: port)
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        let head = String(decoding: response.prefix(16), as: UTF8.self)
        return Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// A TCP connection to 127.0.0.1:`port`, as a file descriptor.
    static func connectLoopback(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else {
            close(fd)
            throw YardError(.unavailable, "cannot connect to 127.0.0.1:\(port)")
        }
        return fd
    }
}

/// A bench's scratch folder under the temporary directory, removed at the end.
struct BenchFolder {
    let path: String

    init(_ name: String) throws {
        path = NSTemporaryDirectory() + "yard-bench-\(name)-\(getpid())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

enum Monotonic {
    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

extension Array where Element == Double {
    func percentile(_ p: Double) -> Double {
        guard !isEmpty else { return .nan }
        let sorted = self.sorted()
        return sorted[Swift.min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
    }
}
