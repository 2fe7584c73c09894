import Foundation
import Glibc
import Synchronization
import Testing
import YardEngine

/// A child process's stdin is written and closed from several tasks (a
/// request, its timeout, the pool replacing a dead predictor, a shutdown).
/// CI once saw a Redis command arrive on an HTTP test client's socket, and
/// NIO stop on EBADF for a socket it still held: a descriptor closed twice,
/// or written after its close, hits whatever file reused the number.
@Suite("Process input")
struct ProcessInputTests {
    /// Reads `fd` to its end.
    private static func readAll(_ fd: Int32) -> Data {
        var out = Data(), buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return out }
            out.append(contentsOf: buffer[0..<n])
        }
    }

    /// Fifty tasks each close `input` and open a new pipe, all at once;
    /// returns the new pipes' descriptors.
    private static func closeFromFiftyTasksOpeningPipes(_ input: ProcessInput) async -> [Int32] {
        await withTaskGroup(of: [Int32].self) { group in
            for _ in 0..<50 {
                group.addTask {
                    input.close()
                    var fds: [Int32] = [0, 0]
                    _ = Glibc.pipe(&fds)
                    return fds
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
    }

    @Test func writesArriveInOrderAndManyClosesCloseOnlyItsOwnDescriptor() async throws {
        let pipe = Pipe()
        let readFD = dup(pipe.fileHandleForReading.fileDescriptor)
        try pipe.fileHandleForReading.close()
        let input = ProcessInput(pipe.fileHandleForWriting, label: "test-input")
        let failures = Failures()
        var expected = Data()
        for i in 0..<200 {
            let chunk = Data("chunk \(i);".utf8)
            expected.append(chunk)
            input.write(chunk) { failures.add($0) }
        }
        // Closed from fifty tasks at once while new descriptors are opened:
        // each of those must still be open afterwards.
        let opened = await Self.closeFromFiftyTasksOpeningPipes(input)
        input.drain()
        #expect(Self.readAll(readFD) == expected, "every write, in order, then the end")
        for fd in opened { #expect(fcntl(fd, F_GETFD) != -1, "descriptor \(fd), opened by someone else, was closed") }

        // A write after the close touches no descriptor: it fails.
        var fresh: [Int32] = [0, 0]
        _ = Glibc.pipe(&fresh)
        _ = fcntl(fresh[0], F_SETFL, O_NONBLOCK)
        input.write(Data("late".utf8)) { failures.add($0) }
        input.drain()
        #expect(failures.all == ["its input is closed"])
        var byte: UInt8 = 0
        #expect(read(fresh[0], &byte, 1) == -1 && errno == EAGAIN, "nothing reached a newer pipe")
        for fd in opened + fresh + [readFD] { close(fd) }
    }

    /// The race itself, many times over: fifty tasks close at once while
    /// each opens a new pipe. With a `FileHandle` closed the same way, a
    /// run of 200 found one of those new descriptors closed in 2 rounds.
    @Test func closesFromManyTasksAtOnceNeverCloseAnotherFile() async throws {
        for _ in 0..<200 {
            let input = ProcessInput(Pipe().fileHandleForWriting, label: "test-input")
            let opened = await Self.closeFromFiftyTasksOpeningPipes(input)
            input.drain()
            for fd in opened { #expect(fcntl(fd, F_GETFD) != -1, "descriptor \(fd), opened by someone else, was closed") }
            for fd in opened { close(fd) }
        }
    }

    @Test func aWriteToAProcessThatIsGoneFailsWithTheReason() throws {
        let pipe = Pipe()
        try pipe.fileHandleForReading.close()  // the reader is gone
        let input = ProcessInput(pipe.fileHandleForWriting, label: "test-input")
        let failures = Failures()
        input.write(Data("request".utf8)) { failures.add($0) }
        input.drain()
        #expect(failures.all.count == 1 && failures.all[0].lowercased().contains("pipe"), "\(failures.all)")
        input.close()
    }
}

private final class Failures: Sendable {
    private let list = Mutex<[String]>([])
    func add(_ why: String) { list.withLock { $0.append(why) } }
    var all: [String] { list.withLock { $0 } }
}
