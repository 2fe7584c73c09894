import Foundation

/// One SSE client on a thread of its own: reads the stream and notes, for
/// each event carrying a send time `"t":NANOSECONDS`, how long it took to
/// arrive. It scans bytes (no strings), so that a hundred of them leave the
/// two cores to the server they measure.
final class SSEReader: @unchecked Sendable {
    let port: Int
    let path: String
    let expect: Int
    private let lock = NSLock()
    private var fd: Int32 = -1
    private let done = DispatchSemaphore(value: 0)
    private var isConnected = false
    private(set) var latencies: [Double] = []
    /// When the last expected event arrived (or the stream ended).
    private(set) var finishedAt: UInt64 = 0

    init(port: Int, path: String, expect: Int) {
        self.port = port
        self.path = path
        self.expect = expect
    }

    var connected: Bool { lock.withLock { isConnected } }

    func start() { Thread { self.read() }.start() }
    func wait() { done.wait() }

    /// Waits until the reader is done or the monotonic `deadline`; then closes it.
    func wait(until deadline: UInt64) {
        let now = Monotonic.nanoseconds()
        if done.wait(timeout: .now() + .nanoseconds(Int(deadline > now ? deadline - now : 0))) == .timedOut {
            close()
            done.wait()
        }
    }

    func close() { lock.withLock { if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) } } }

    private static let marker = Array(#""t":"#.utf8)

    private func read() {
        defer {
            finishedAt = Monotonic.nanoseconds()
            done.signal()
        }
        guard let fd = try? BenchServer.connectLoopback(port: port) else { return }
        lock.withLock { self.fd = fd }
        defer { Glibc.close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        lock.withLock { isConnected = true }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var kept = 0  // bytes of an unfinished line carried to the next read
        var seen = 0
        let marker = Self.marker
        while seen < expect {
            if kept == buffer.count { kept = 0 }  // a line longer than the buffer holds no marker we want
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + kept, $0.count - kept) }
            if n <= 0 { return }
            let now = Monotonic.nanoseconds()
            let end = kept + n
            var lineEnd = end
            while lineEnd > 0, buffer[lineEnd - 1] != UInt8(ascii: "\n") { lineEnd -= 1 }
            var i = 0
            while i + marker.count <= lineEnd {
                if buffer[i] == marker[0], buffer[i + 1] == marker[1], buffer[i + 2] == marker[2], buffer[i + 3] == marker[3] {
                    var j = i + 4
                    var sent: UInt64 = 0
                    while j < lineEnd, buffer[j] >= 48, buffer[j] <= 57 {
                        sent = sent * 10 + UInt64(buffer[j] - 48)
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
            kept = end - lineEnd
            if kept > 0 { buffer.withUnsafeMutableBytes { _ = memmove($0.baseAddress!, $0.baseAddress! + lineEnd, kept) } }
        }
    }
}
