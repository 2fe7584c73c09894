import Foundation
import Testing
import YardDomain

/// Issue 32 through the binary: `yard users`, `yard tokens`, `yard jobs
/// --mine` and `yard audit` against `yard serve` (the full API, no
/// workers, so a job stays queued) with a YARD_TOKEN.
@Suite("Teams CLI", .enabled(if: TestEnvironment.ready, "run scripts/test.sh"))
struct TeamsCLITests {
    static let admin = "admin-token-for-the-cli-test"

    @Test func usersTokensMineAndAuditThroughTheCLI() async throws {
        let h = try YardHarness("teams-cli")
        defer { h.dir.remove() }
        let server = try await h.serving(["serve", "--port", "0", "--data-dir", h.data, "--python", h.python],
                                         environment: ["YARD_TOKEN": Self.admin], log: "serve")
        defer { server.process.terminate() }
        func yard(_ token: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
            let (process, log) = try h.launch(arguments + ["--server", server.base], environment: ["YARD_TOKEN": token], log: "cmd")
            process.waitUntilExit()
            return (process.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        }
        func ok(_ token: String, _ arguments: [String]) throws -> String {
            let result = try yard(token, arguments)
            #expect(result.status == 0, "yard \(arguments.joined(separator: " ")): \(result.output)")
            return result.output
        }
        /// Fails with one line (no stack trace) that contains `what`.
        func refused(_ token: String, _ arguments: [String], _ what: String) throws {
            let result = try yard(token, arguments)
            let lines = result.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n")
            #expect(result.status != 0 && lines.count == 1 && result.output.contains(what), "yard \(arguments.joined(separator: " ")): \(result.output)")
        }

        _ = try ok(Self.admin, ["users", "add", "mia", "--role", "member"])
        _ = try ok(Self.admin, ["users", "add", "vera", "--role", "viewer"])
        let made = try ok(Self.admin, ["tokens", "create", "--user", "mia", "--name", "laptop", "--expires", "30d"])
        let mia = try #require(made.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last.map(String.init))
        #expect(APIToken.parse(mia) != nil, "the token alone on the last line: \(made)")
        let vera = try #require(try ok(Self.admin, ["tokens", "create", "--user", "vera"]).split(separator: "\n").last.map(String.init))

        let data = try h.dir.write("d/data.yaml", "path: \(h.dir.file("d"))\ntrain: images\nval: images\nnames: {0: a}\n")
        let config = try h.dir.write("job.yaml", "model: yolov8n.yaml\ntask_id: mia-job\ntrain: {data: \(data), epochs: 1, imgsz: 32}\n")
        _ = try ok(mia, ["submit", config])
        #expect(try ok(mia, ["jobs", "--mine"]).contains("mia-job"))
        #expect(!(try ok(vera, ["jobs", "--mine"])).contains("mia-job"))
        #expect(try ok(vera, ["show", "mia-job"]).contains("submitted by mia"))
        try refused(vera, ["stop", "mia-job"], "vera is a viewer")
        try refused(vera, ["users", "add", "eve", "--role", "admin"], "needs an admin")

        let listed = try ok(Self.admin, ["tokens", "list", "--user", "mia"])
        #expect(listed.contains("laptop") && listed.contains("live") && !listed.contains(String(mia.suffix(43))))
        let id = String(mia.dropFirst(3).prefix(12))
        _ = try ok(Self.admin, ["tokens", "revoke", id])
        try refused(mia, ["jobs"], "was revoked")
        #expect(try ok(Self.admin, ["tokens", "list"]).contains("revoked"))

        let audit = try ok(Self.admin, ["audit", "--user", "vera"])
        #expect(audit.contains("POST /api/jobs/mia-job/stop") && audit.contains("403") && audit.contains("viewer"), "\(audit)")
        #expect(!audit.contains("POST /api/users") || audit.contains("vera"))
        for leaked in [mia, vera, Self.admin] { #expect(!(try ok(Self.admin, ["audit", "--json", "--limit", "1000"])).contains(leaked)) }

        _ = try ok(Self.admin, ["users", "role", "vera", "member"])
        #expect(try ok(Self.admin, ["users", "list"]).contains("vera  member"))
        _ = try ok(Self.admin, ["users", "remove", "vera"])
        try refused(vera, ["jobs"], "was revoked")

        // Bad input: one line, before anything is sent where it can be checked here.
        try refused(Self.admin, ["users", "add", "../x", "--role", "member"], "name:")
        try refused(Self.admin, ["users", "add", "eve", "--role", "root"], "--role")
        try refused(Self.admin, ["tokens", "create", "--user", "mia", "--expires", "3x"], "--expires")
        try refused(Self.admin, ["tokens", "revoke", mia], "not a token id")
        try refused(Self.admin, ["tokens", "create", "--user", "nobody"], "no user nobody")
        try refused(Self.admin, ["users", "add", "admin", "--role", "member"], "YARD_TOKEN")

        // Nothing in the data dir holds a token.
        for case let relative as String in FileManager.default.enumerator(atPath: h.data)! {
            guard let bytes = FileManager.default.contents(atPath: h.data + "/" + relative) else { continue }
            for token in [mia, vera] { #expect(bytes.range(of: Data(token.suffix(43).utf8)) == nil, "\(relative) holds a token") }
        }
    }
}
