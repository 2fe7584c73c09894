import Crypto
import Foundation
import YardDomain

/// How a delivery is signed, as Stripe and GitHub receivers check it:
/// `X-Trainyard-Signature: sha256=HEX`, the HMAC-SHA256 with the secret of
/// `TIMESTAMP.BODY`, where TIMESTAMP is `X-Trainyard-Timestamp` (Unix
/// seconds). A receiver recomputes it and refuses old timestamps (replays).
public enum WebhookSignature {
    public static let timestampHeader = "X-Trainyard-Timestamp"
    public static let signatureHeader = "X-Trainyard-Signature"
    public static let deliveryHeader = "X-Trainyard-Delivery"

    /// `sha256=HEX` for `body` sent at `timestamp`.
    public static func sign(body: Data, timestamp: Int64, secret: String) -> String {
        var message = Data("\(timestamp).".utf8)
        message.append(body)
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + code.hex
    }

    /// Whether `signature` is `sign(body:timestamp:secret:)` (compared in constant time).
    public static func verify(signature: String, body: Data, timestamp: Int64, secret: String) -> Bool {
        let expected = Array(sign(body: body, timestamp: timestamp, secret: secret).utf8)
        let given = Array(signature.utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
