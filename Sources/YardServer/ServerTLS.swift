import Foundation
import HummingbirdCore
import HummingbirdTLS
import NIOCore
import NIOSSL
import YardDomain

/// `--tls-cert FILE --tls-key FILE`: the server speaks HTTPS itself, no
/// proxy needed. The files are read once at start; a missing, unreadable
/// or mismatched file stops the start with one line naming it.
public struct ServerTLS: Sendable {
    public let configuration: TLSConfiguration
    /// HTTP/1.1 inside TLS, for the Application.
    let server: HTTPServerBuilder
    /// The certificate's file, for the start-up line.
    public let certificatePath: String

    /// - Parameters:
    ///   - certificate: PEM certificate chain, the server's own first.
    ///   - key: its PEM private key (unencrypted).
    public init(certificate: String, key: String) throws(YardError) {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw YardError.invalid("--tls-cert", "cannot read a PEM certificate from \(certificate) (\(Self.reason(error))); give the server's certificate chain, its own certificate first")
        }
        guard !chain.isEmpty else { throw YardError.invalid("--tls-cert", "\(certificate) holds no PEM certificate") }
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw YardError.invalid("--tls-key", "cannot read an unencrypted PEM private key from \(key) (\(Self.reason(error)))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        // A key that is not the certificate's fails here, not at the first client's handshake.
        do {
            _ = try NIOSSLContext(configuration: configuration)
            server = try .tls(.http1(), tlsConfiguration: configuration)
        } catch {
            throw YardError.invalid("--tls-key", "\(key) is not the private key of the certificate in \(certificate)")
        }
        self.configuration = configuration
        self.certificatePath = certificate
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? IOError { return error.description }
        let text = "\(error)"
        return text.count > 120 ? String(text.prefix(120)) + "..." : text
    }
}
