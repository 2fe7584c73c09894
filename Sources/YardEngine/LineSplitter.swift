import Foundation

/// Splits a byte stream into lines. A carriage return (progress bars) keeps
/// only the text after it, so a redrawn bar becomes its final state.
package struct LineSplitter {
    private var pending: [UInt8] = []

    package init() {}

    package mutating func feed(_ bytes: some Sequence<UInt8>) -> [String] {
        var lines: [String] = []
        for byte in bytes {
            if byte == 10 {
                lines.append(Self.clean(pending))
                pending.removeAll(keepingCapacity: true)
            } else if byte == 13 {
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
            }
        }
        return lines
    }

    package mutating func finish() -> [String] {
        defer { pending.removeAll() }
        return pending.isEmpty ? [] : [Self.clean(pending)]
    }

    /// Decodes UTF-8 and drops ANSI escape sequences (colours, cursor moves).
    static func clean(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == 27, i + 1 < bytes.count, bytes[i + 1] == 91 {
                i += 2
                while i < bytes.count, !(bytes[i] >= 64 && bytes[i] <= 126) { i += 1 }
                i += 1
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Reads `fd` to its end on a thread of its own (a blocking read holds no
/// cooperative thread), calling `line` for each line, then closes it and
/// calls `done`. The engine's event and log pipes, the study process' answers.
package func readLines(from fd: Int32, name: String, line: @escaping @Sendable (String) -> Void, done: @escaping @Sendable () -> Void) {
    let thread = Thread {
        var splitter = LineSplitter()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            for l in splitter.feed(buffer[0..<n]) { line(l) }
        }
        for l in splitter.finish() { line(l) }
        close(fd)
        done()
    }
    thread.name = name
    thread.start()
}
