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
}
