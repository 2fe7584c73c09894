import Crypto

/// Lowercase hex of a digest or an authentication code: the one spelling of
/// `sha256` text (dataset and config hashes, SigV4, key ids, venv names).
extension Digest {
    public var hex: String { Hex.encode(self) }
}

extension MessageAuthenticationCode {
    public var hex: String { Hex.encode(self) }
}

enum Hex {
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
