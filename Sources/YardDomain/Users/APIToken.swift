import Crypto
import Foundation

/// A user's API token: `yt_ID_SECRET`, where ID (12 hex digits) names the
/// token in lists and revocations and SECRET is 32 random bytes (base64url).
/// The store keeps `SHA-256(salt | SECRET)` with a random salt per token;
/// the token is shown once, when it is made.
public struct APIToken: Sendable, Hashable {
    public static let prefix = "yt_"
    public let id: String
    let secret: String

    /// The text a user sends as `Authorization: Bearer ...`.
    public var text: String { Self.prefix + id + "_" + secret }

    /// A new random token, and the record the store keeps of it.
    public static func generate(user: String, label: String?, createdAt: Date, createdBy: String?, expiresAt: Date?) -> (APIToken, TokenRecord) {
        let token = APIToken(id: Hex.encode(randomBytes(6)), secret: base64url(randomBytes(32)))
        let salt = Hex.encode(randomBytes(16))
        let record = TokenRecord(id: token.id, user: user, label: label, salt: salt, hash: hash(token.secret, salt: salt),
                                 createdAt: createdAt, createdBy: createdBy, expiresAt: expiresAt)
        return (token, record)
    }

    /// A text that has a token's shape, else nil (the server's own token,
    /// a typo). Says nothing about whether the token exists.
    public static func parse(_ text: String) -> APIToken? {
        guard text.hasPrefix(prefix), text.count == prefix.count + 12 + 1 + 43 else { return nil }
        let rest = text.dropFirst(prefix.count)
        let id = String(rest.prefix(12)), secret = String(rest.dropFirst(13))
        guard rest.dropFirst(12).first == "_", isTokenID(id),
              secret.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        return APIToken(id: id, secret: secret)
    }

    /// Whether `record` was made for this token (constant time over the hash).
    public func matches(_ record: TokenRecord) -> Bool {
        guard record.id == id else { return false }
        let given = Array(Self.hash(secret, salt: record.salt).utf8), kept = Array(record.hash.utf8)
        guard given.count == kept.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<given.count { diff |= given[i] ^ kept[i] }
        return diff == 0
    }

    /// 12 lowercase hex digits.
    public static func isTokenID(_ text: String) -> Bool {
        text.count == 12 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    static func hash(_ secret: String, salt: String) -> String {
        SHA256.hash(data: Data((salt + ":" + secret).utf8)).hex
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// `--expires 30d`: a whole number of hours, days or weeks (`12h`, `30d`, `2w`), at most 10 years.
    public static func lifetime(_ text: String, field: String = "expires") throws(YardError) -> TimeInterval {
        let units: [Character: Double] = ["h": 3600, "d": 86_400, "w": 604_800]
        guard let unit = text.last.flatMap({ units[$0] }), let count = Int(text.dropLast()), count > 0,
              Double(count) * unit <= 3653 * 86_400 else {
            throw YardError.invalid(field, "\"\(text.prefix(40))\" is not a lifetime; use a whole number of hours, days or weeks, e.g. 12h, 30d, 2w (at most 10 years)")
        }
        return Double(count) * unit
    }
}
