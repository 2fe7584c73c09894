import Foundation

/// `yard-bench sse-readers PORT PATH COUNT EXPECT SECONDS`: the event-log
/// bench's readers, in a process of their own so that their CPU is counted
/// apart from the server's (they still share the machine's cores with it).
/// COUNT connections to `http://127.0.0.1:PORT/PATH`, all read by one thread
/// through poll(2), as a client would from another machine: no thread per
/// reader, no context switch per event. Each reader notes, for every event
/// carrying a send time `"t":NANOSECONDS` (CLOCK_MONOTONIC, the same clock
/// in both processes), how long it took to arrive. Prints `ready` once
/// every request is sent, then, when every reader has EXPECT events or
/// SECONDS have passed, one line:
/// `done DELIVERIES P50_MS P99_MS LAST_ARRIVAL_NS CPU_SECONDS`.
enum SSEReaders {
    static func run(port: Int, path: String, count: Int, expect: Int, seconds: Int) throws {
        var readers: [Int32: Reader] = [:]
        for _ in 0..<count {
            let fd = try BenchServer.connectLoopback(port: port)
            let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else { throw BenchError("cannot send the request") }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            readers[fd] = Reader(fd: fd)
        }
        say("ready")

        let deadline = Monotonic.nanoseconds() + UInt64(seconds) * 1_000_000_000
        var latencies: [Double] = []
        latencies.reserveCapacity(count * expect)
        var open = count
        var last: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var polled: [pollfd] = []
        while open > 0, Monotonic.nanoseconds() < deadline {
            polled.removeAll(keepingCapacity: true)
            for fd in readers.keys { polled.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let ready = Glibc.poll(&polled, nfds_t(polled.count), 100)
            if ready < 0, errno == EINTR { continue }
            guard ready >= 0 else { throw BenchError("poll failed") }
            for entry in polled where entry.revents != 0 {
                guard let reader = readers[entry.fd] else { continue }
                while true {
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(reader.fd, $0.baseAddress!, $0.count) }
                    if n < 0, errno == EAGAIN || errno == EWOULDBLOCK { break }
                    let now = Monotonic.nanoseconds()
                    if n <= 0 {  // the server closed it (or an error): this reader is done
                        readers[reader.fd] = nil
                        reader.finish()
                        open -= 1
                        break
                    }
                    reader.scan(buffer[0..<n], at: now, into: &latencies)
                    last = now
                    if reader.seen >= expect {
                        readers[reader.fd] = nil
                        reader.finish()
                        open -= 1
                        break
                    }
                }
            }
        }
        for reader in readers.values { reader.finish() }
        say(String(format: "done %d %.4f %.4f %llu %.3f", latencies.count, latencies.percentile(0.5), latencies.percentile(0.99),
                   last, Monotonic.cpuSeconds()))
    }

    /// One line to standard output, written at once (the parent waits for it).
    static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }

    /// One connection: the bytes of a line not yet complete, and the events seen.
    final class Reader {
        let fd: Int32
        var carry: [UInt8] = []
        var seen = 0

        init(fd: Int32) { self.fd = fd }

        private static let marker = Array(#""t":"#.utf8)

        /// Notes the latency of each `"t":N` in the complete lines of what was read.
        func scan(_ bytes: ArraySlice<UInt8>, at now: UInt64, into latencies: inout [Double]) {
            carry.append(contentsOf: bytes)
            var lineEnd = carry.count
            while lineEnd > 0, carry[lineEnd - 1] != UInt8(ascii: "\n") { lineEnd -= 1 }
            let marker = Self.marker
            var i = 0
            while i + marker.count <= lineEnd {
                if carry[i] == marker[0], carry[i + 1] == marker[1], carry[i + 2] == marker[2], carry[i + 3] == marker[3] {
                    var j = i + 4
                    var sent: UInt64 = 0
                    while j < lineEnd, carry[j] >= 48, carry[j] <= 57 {
                        sent = sent * 10 + UInt64(carry[j] - 48)
                        j += 1
                    }
                    if j > i + 4 {
                        latencies.append(Double(Int64(now) - Int64(sent)) / 1e6)
                        seen += 1
                    }
                    i = j
                } else {
                    i += 1
                }
            }
            carry.removeFirst(lineEnd)
        }

        func finish() { close(fd) }
    }

    /// Starts the readers in a child process (this executable), waits until
    /// their requests are sent, and returns a handle to collect them.
    static func spawn(port: Int, path: String, count: Int, expect: Int, seconds: Int) throws -> Child {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["sse-readers", String(port), path, String(count), String(expect), String(seconds)]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let child = Child(process: process, output: out.fileHandleForReading)
        guard child.line() == "ready" else { throw BenchError("the readers' process did not start") }
        return child
    }

    struct Result {
        var deliveries: Int
        var p50: Double
        var p99: Double
        var lastArrival: UInt64
        var cpuSeconds: Double
    }

    final class Child {
        let process: Process
        let output: FileHandle
        private var pending: [UInt8] = []

        init(process: Process, output: FileHandle) {
            self.process = process
            self.output = output
        }

        /// The next line the child prints, or nil at its end.
        func line() -> String? {
            while true {
                if let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[..<end], as: UTF8.self)
                    pending.removeFirst(end + 1)
                    return line
                }
                let data = output.availableData
                if data.isEmpty { return nil }
                pending.append(contentsOf: data)
            }
        }

        /// Waits for the readers to finish and reads their result.
        func result() throws -> Result {
            guard let line = line() else { throw BenchError("the readers' process ended without a result") }
            process.waitUntilExit()
            let fields = line.split(separator: " ")
            guard fields.count == 6, fields[0] == "done", let deliveries = Int(fields[1]), let p50 = Double(fields[2]),
                  let p99 = Double(fields[3]), let last = UInt64(fields[4]), let cpu = Double(fields[5])
            else { throw BenchError("the readers' process printed \"\(line)\"") }
            return Result(deliveries: deliveries, p50: p50, p99: p99, lastArrival: last, cpuSeconds: cpu)
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
