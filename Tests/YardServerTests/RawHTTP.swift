import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Sends one HTTP/1.1 request with the request target written byte for byte
/// (no client normalises `//api` or `%2F` away) and returns the status code
/// and body. The blocking socket work runs on a thread of its own.
enum RawHTTP {
    struct Reply: Sendable {
        var status: Int
        var body: String
    }

    static func send(port: Int, method: String, target: String, headers: [String: String] = [:], body: String = "",
                     timeout: Int = 10) async throws -> Reply {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    try exchange(port: port, method: method, target: target, headers: headers, body: body, timeout: timeout)
                })
            }.start()
        }
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    private static func exchange(port: Int, method: String, target: String, headers: [String: String], body: String,
                                 timeout seconds: Int) throws -> Reply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket failed") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect to \(port) failed") }
        var text = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n" + body
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw Failure(description: "write failed") }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        let reply = String(decoding: response, as: UTF8.self)
        let parts = reply.components(separatedBy: "\r\n\r\n")
        guard let statusLine = parts.first?.split(separator: "\r\n").first, statusLine.split(separator: " ").count >= 2,
              let status = Int(statusLine.split(separator: " ")[1]) else {
            throw Failure(description: "no HTTP status in the reply to \(method) \(target) (\(response.isEmpty ? "nothing read: \(seconds) s passed with no byte, or the server closed" : "\(reply.prefix(120))"))")
        }
        return Reply(status: status, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
    }
}
