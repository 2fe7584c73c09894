import Foundation
import Testing
import YardDomain
import YardTestSupport

/// Issue 30's HTTPS through the binary: `yard serve --tls-cert --tls-key`
/// serves https; the CLI verifies it with `--ca` (or YARD_CA), and refuses
/// a server signed by another CA, or with no CA given, in one line naming
/// `--ca`; bad TLS flags stop the start in one line.
@Suite("HTTPS through the CLI", .enabled(if: TestEnvironment.ready, "run scripts/test.sh"))
struct TLSCLITests {
    @Test func theCLIVerifiesAnHTTPSServerWithItsCA() async throws {
        let h = try YardHarness("tls-cli")
        defer { h.dir.remove() }
        let pki = try TestCA(in: h.dir.path)
        let started = try await h.spawn(["serve", "--port", "0", "--data-dir", h.data, "--python", h.python,
                                         "--tls-cert", pki.certificate, "--tls-key", pki.key], log: "serve", ready: "serving https://127.0.0.1:")
        defer { started.process.terminate() }
        let text = started.text
        let range = try #require(text.range(of: "serving https://127.0.0.1:"))
        let port = try #require(Int(text[range.upperBound...].prefix { $0.isNumber }))
        let url = "https://127.0.0.1:\(port)"

        func yard(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
            let (process, log) = try h.launch(arguments, environment: environment, log: "cmd")
            process.waitUntilExit()
            return (process.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        }
        func refused(_ result: (status: Int32, output: String), _ what: String) {
            let lines = result.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n")
            #expect(result.status != 0 && lines.count == 1 && result.output.contains(what), "\(result.output)")
        }

        let listed = try yard(["jobs", "--server", url, "--ca", pki.ca])
        #expect(listed.status == 0, "\(listed.output)")
        let byEnvironment = try yard(["jobs", "--server", url], environment: ["YARD_CA": pki.ca])
        #expect(byEnvironment.status == 0, "\(byEnvironment.output)")
        refused(try yard(["jobs", "--server", url, "--ca", pki.otherCA]), "--ca")
        refused(try yard(["jobs", "--server", url], environment: ["YARD_CA": ""]), "--ca")
        refused(try yard(["jobs", "--server", url, "--ca", h.dir.file("nope.pem")]), "--ca")
        // Plain http to the https port is not an answer either.
        refused(try yard(["jobs", "--server", "http://127.0.0.1:\(port)"]), "--server")

        // Bad flags: one line naming the flag, and no server.
        refused(try yard(["serve", "--port", "0", "--data-dir", h.dir.file("d2"), "--tls-cert", pki.certificate]), "--tls-key")
        refused(try yard(["serve", "--port", "0", "--data-dir", h.dir.file("d3"), "--tls-cert", pki.certificate, "--tls-key", pki.ca]), "--tls-key")
    }
}
