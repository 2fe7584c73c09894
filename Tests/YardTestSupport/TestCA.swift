import Foundation

/// A certificate authority made with openssl for one test: its certificate,
/// a server certificate it signed for 127.0.0.1 and localhost with the
/// server's key, and a second, unrelated CA (what a client must refuse).
public struct TestCA: Sendable {
    public let ca: String
    public let certificate: String
    public let key: String
    public let otherCA: String

    public init(in folder: String) throws {
        ca = folder + "/ca.pem"
        certificate = folder + "/server.pem"
        key = folder + "/server.key"
        otherCA = folder + "/other-ca.pem"
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try Self.openssl(["req", "-x509"] + curve + ["-keyout", folder + "/ca.key", "-out", ca, "-days", "2", "-subj", "/CN=Trainyard Test CA"])
        try Self.openssl(["req", "-x509"] + curve + ["-keyout", folder + "/other-ca.key", "-out", otherCA, "-days", "2", "-subj", "/CN=Another CA"])
        try Self.openssl(["req"] + curve + ["-keyout", key, "-out", folder + "/server.csr", "-subj", "/CN=127.0.0.1"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n".write(toFile: folder + "/ext.cnf", atomically: true, encoding: .utf8)
        try Self.openssl(["x509", "-req", "-in", folder + "/server.csr", "-CA", ca, "-CAkey", folder + "/ca.key", "-CAcreateserial",
                          "-out", certificate, "-days", "2", "-extfile", folder + "/ext.cnf"])
    }

    static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestCAError(description: "openssl \(arguments.first ?? "") failed: \(String(decoding: text, as: UTF8.self).suffix(400))")
        }
    }
}

public struct TestCAError: Error, CustomStringConvertible {
    public let description: String
}
