import Foundation
import Testing

/// `yard submit` says what is wrong with the path it was given, on one line,
/// before anything is sent (no server runs here).
@Suite("CLI input", .enabled(if: TestEnvironment.ready, "run scripts/test.sh"))
struct CLIInputTests {
    @Test func submitNamesWhatIsWrongWithTheFile() throws {
        let h = try YardHarness("cli-input")
        defer { h.dir.remove() }
        let folder = h.dir.file("a-folder")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let empty = try h.dir.write("empty.yaml", "")
        let binary = h.dir.file("binary.yaml")
        FileManager.default.createFile(atPath: binary, contents: Data([0x6D, 0x3A, 0x20, 0xFF, 0xFE, 0x0A]))
        let cases = [(folder, "is a folder"), ("/dev/null", "not a regular file"), (empty, "is empty"),
                     (h.dir.file("missing.yaml"), "no such file"), (binary, "not UTF-8"), (folder + "/x/../../empty.yaml", "no such file")]
        for (path, what) in cases {
            let result = try h.yard(["submit", path, "--server", "http://127.0.0.1:9"])
            #expect(result.status != 0, "\(path)")
            #expect(result.output.contains(what), "\(path): \(result.output)")
            #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(path): \(result.output)")
        }
    }

    /// `yard worker` refuses to start, on one line, without what it needs:
    /// the server's key, a Redis URL it can read, a usable GPU when pinned.
    @Test(.enabled(if: !FileManager.default.isExecutableFile(atPath: "/usr/bin/nvidia-smi"), "a GPU is here"))
    func aWorkerThatCannotWorkSaysWhyOnOneLine() throws {
        let h = try YardHarness("cli-worker")
        defer { h.dir.remove() }
        let cases: [([String], String)] = [
            (["worker", "--redis", "redis://127.0.0.1:9", "--data-dir", h.dir.file("w1")], "needs the server's secret key"),
            (["worker", "--redis", "rediss://127.0.0.1:9?ca=/no/ca.pem", "--data-dir", h.dir.file("w2")], "ca file /no/ca.pem cannot be read"),
            (["worker", "--redis", "redis://127.0.0.1:9", "--data-dir", h.dir.file("w3"), "--secret-key-file", h.dir.file("nope.key")], "does not exist"),
            (["worker", "--redis", "redis://127.0.0.1:9", "--data-dir", h.dir.file("w4"), "--gpu", "0", "--secret-key-file", try h.dir.write("k", "\(SecretKey.fresh)\n")],
             "--gpu 0: no usable CUDA device"),
            (["worker", "--data-dir", h.dir.file("w5")], "--redis is required"),
        ]
        for (arguments, what) in cases {
            let result = try h.yard(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.output.contains(what), "\(arguments): \(result.output)")
            #expect(!result.output.contains("Fatal error") && !result.output.contains("Stack"), "\(result.output)")
        }
    }
}

enum SecretKey {
    /// A valid key (32 random bytes, base64) for a worker to load.
    static var fresh: String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }
}
