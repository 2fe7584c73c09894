import ArgumentParser
import Foundation
import YardServer

struct Secrets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the key that seals job secrets at rest.", subcommands: [Rotate.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Seal every stored secret with a new key (stop `yard up` first).",
            discussion: "With a key file (default DATA/secret.key) a new key is made and the old one dropped. With YARD_SECRET_KEY, set it to NEW,OLD, run this, then set it to NEW.")

        @Option(name: .customLong("data-dir"), help: "The data dir of `yard up`.") var dataDir = ".yard"
        @Option(name: .customLong("secret-key-file"), help: "The key file, if not DATA/secret.key.") var secretKeyFile: String?

        func run() async throws {
            try await reporting {
                let result = try await SecretRotation.rotate(dataDirectory: dataDir, keyFile: secretKeyFile)
                let whereKey = result.keyFile.map { "the new key is in \($0)" } ?? "now set YARD_SECRET_KEY to the first key alone"
                Output.line("re-sealed \(result.rows) job secret(s) and \(result.spoolFiles) tracking spool file(s) with key \(result.keyID); \(whereKey)")
            }
        }
    }
}
