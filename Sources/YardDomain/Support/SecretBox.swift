import Crypto
import Foundation

/// Seals secrets at rest with AES-GCM. A box holds a keyring: the first key
/// seals, every key opens (so a key can be rotated without a moment where
/// some secret cannot be read). A sealed value is one line of text:
/// `yard-sealed:v1:KEYID:BASE64(nonce | ciphertext | tag)`, where KEYID is
/// the first 8 hex digits of the key's SHA-256.
public struct SecretBox: Sendable {
    public static let prefix = "yard-sealed:v1:"
    public static let keySize = 32

    public struct Key: Sendable {
        public let id: String
        private let bytes: Data
        var key: SymmetricKey { SymmetricKey(data: bytes) }

        public init(_ data: Data) throws(YardError) {
            guard data.count == SecretBox.keySize else {
                throw YardError(.invalidInput, field: "secret key", "a secret key must be \(SecretBox.keySize) bytes (base64: `openssl rand -base64 32`), got \(data.count)")
            }
            bytes = data
            id = String(SHA256.hash(data: data).hex.prefix(8))
        }
    }

    public let keys: [Key]

    public init(keys: [Key]) throws(YardError) {
        guard !keys.isEmpty else { throw YardError(.invalidInput, field: "secret key", "no secret key given") }
        self.keys = keys
    }

    /// A fresh random key, base64 (what a key file holds, one per line).
    public static func newKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
    }

    /// Keys from text: base64 keys separated by newlines or commas, newest first.
    public static func parseKeys(_ text: String, source: String) throws(YardError) -> [Key] {
        let parts = text.split(whereSeparator: { $0 == "\n" || $0 == "," }).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var keys: [Key] = []
        for part in parts {
            guard let data = Data(base64Encoded: part) else {
                throw YardError(.invalidInput, field: source, "\(source): not a base64 key; make one with `openssl rand -base64 32`")
            }
            do { keys.append(try Key(data)) } catch {
                throw YardError(.invalidInput, field: source, "\(source): \(error.message)")
            }
        }
        guard !keys.isEmpty else { throw YardError(.invalidInput, field: source, "\(source): holds no key") }
        return keys
    }

    public static func isSealed(_ text: String) -> Bool { text.hasPrefix(prefix) }

    public func seal(_ plaintext: Data) -> String {
        let key = keys[0]
        // AES-GCM with a random 96-bit nonce cannot fail for in-memory data.
        let box = try! AES.GCM.seal(plaintext, using: key.key)
        return Self.prefix + key.id + ":" + box.combined!.base64EncodedString()
    }

    public func seal(_ text: String) -> String { seal(Data(text.utf8)) }

    public func open(_ sealed: String) throws(YardError) -> Data {
        let parts = sealed.dropFirst(Self.prefix.count).split(separator: ":", maxSplits: 1)
        guard Self.isSealed(sealed), parts.count == 2, let data = Data(base64Encoded: String(parts[1])) else {
            throw YardError(.internal, "a sealed secret is malformed")
        }
        guard let key = keys.first(where: { $0.id == parts[0] }) else {
            throw YardError(.unavailable, field: "secret key",
                            "a secret was sealed with key \(parts[0]), which is not in the keyring (\(keys.map(\.id).joined(separator: ", "))); restore that key (secret.key or YARD_SECRET_KEY)")
        }
        do {
            return try AES.GCM.open(AES.GCM.SealedBox(combined: data), using: key.key)
        } catch {
            throw YardError(.unavailable, field: "secret key", "a sealed secret does not open with key \(key.id): it was altered or the key is wrong")
        }
    }

    public func openText(_ sealed: String) throws(YardError) -> String {
        String(decoding: try open(sealed), as: UTF8.self)
    }
}
