import Foundation
#if canImport(Glibc)
import Glibc
import YardTestSupport
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
        let fd = try connectLoopback(port: port, receiveTimeout: seconds)
        defer { close(fd) }
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
