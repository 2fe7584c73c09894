import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import Testing
import YardDomain
import YardServer
import YardTestSupport

/// `--tls-cert/--tls-key`: the server speaks HTTPS itself. A client that
/// trusts the CA gets its answers; one that trusts another CA, or speaks
/// plain HTTP to it, gets nothing; bad files stop the start in one line
/// naming the flag.
@Suite("HTTPS")
struct TLSTests {
    @Test func aServerWithACertificateAnswersOverHTTPSToAClientThatTrustsItsCA() async throws {
        let certificates = try TemporaryDirectory("tls-pki")
        defer { certificates.remove() }
        let pki = try TestCA(in: certificates.path)
        let yard = try TestYard(tls: ServerTLS(certificate: pki.certificate, key: pki.key))
        defer { yard.dir.remove() }
        try await yard.live { port in
            let trusted = Self.client(trusting: pki.ca)
            let stranger = Self.client(trusting: pki.otherCA)
            let health = try await trusted.execute(HTTPClientRequest(url: "https://127.0.0.1:\(port)/health"), timeout: .seconds(10))
            #expect(health.status == .ok)
            let jobs = try await trusted.execute(HTTPClientRequest(url: "https://localhost:\(port)/api/jobs"), timeout: .seconds(10))
            #expect(jobs.status == .ok)

            await #expect(throws: (any Error).self, "a client trusting another CA must refuse the server") {
                _ = try await stranger.execute(HTTPClientRequest(url: "https://127.0.0.1:\(port)/health"), timeout: .seconds(10))
            }
            // Plain HTTP to the TLS port gets no answer (the server wants a handshake).
            let plain = try? await RawHTTP.send(port: port, method: "GET", target: "/health", timeout: 5)
            #expect(plain?.status != 200)
            try await trusted.shutdown()
            try await stranger.shutdown()
        }
    }

    @Test func badFilesAreRefusedInOneLineNamingTheFlag() throws {
        let dir = try TemporaryDirectory("tls-files")
        defer { dir.remove() }
        let pki = try TestCA(in: dir.path)
        let garbage = try dir.write("garbage.pem", "not a certificate\n")
        let cases: [(String, String, String)] = [
            (dir.file("missing.pem"), pki.key, "--tls-cert"),
            (garbage, pki.key, "--tls-cert"),
            (pki.certificate, dir.file("missing.key"), "--tls-key"),
            (pki.certificate, garbage, "--tls-key"),
            // The CA's own key is a valid key, but not the certificate's.
            (pki.certificate, dir.file("ca.key"), "--tls-key"),
        ]
        for (certificate, key, field) in cases {
            do {
                _ = try ServerTLS(certificate: certificate, key: key)
                Issue.record("\(certificate) + \(key) was accepted")
            } catch {
                #expect(error.field == field, "\(error.message)")
                #expect(!error.message.contains("\n"), "one line: \(error.message)")
            }
        }
    }

    static func client(trusting ca: String) -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(ca)
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = tls
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }
}
