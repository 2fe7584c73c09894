import Foundation

/// A person or a script that uses the server with tokens of its own.
public struct User: Sendable, Codable, Hashable {
    public var name: String
    public var role: Role
    public var createdAt: Date
    /// Who added it.
    public var createdBy: String?

    public init(name: String, role: Role, createdAt: Date, createdBy: String?) {
        self.name = name
        self.role = role
        self.createdAt = createdAt
        self.createdBy = createdBy
    }

    enum CodingKeys: String, CodingKey { case name, role, createdAt = "created_at", createdBy = "created_by" }

    /// User names: 1-64 letters, digits, `_ - .`, starting with a letter
    /// (they appear in tables, records and the audit trail).
    public static func validateName(_ name: String, field: String = "name") throws(YardError) {
        let ok = !name.isEmpty && name.count <= 64 && name.first.map { $0.isASCII && $0.isLetter } == true
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }
        guard ok else { throw YardError.invalid(field, "\"\(name.prefix(40))\" must be 1-64 letters, digits, '_', '-' or '.', starting with a letter") }
    }
}

/// What the store keeps of an API token: its public id, whose it is, and a
/// salted SHA-256 of its secret part, never the token. A token is 256 random
/// bits, so a fast hash is enough: nothing shorter than the token itself
/// can be guessed from it.
public struct TokenRecord: Sendable, Codable, Hashable {
    public var id: String
    public var user: String
    /// The label given at creation (`--name`), for `yard tokens list`.
    public var label: String?
    public var salt: String
    public var hash: String
    public var createdAt: Date
    public var createdBy: String?
    public var expiresAt: Date?
    public var revokedAt: Date?

    public init(id: String, user: String, label: String?, salt: String, hash: String, createdAt: Date, createdBy: String?, expiresAt: Date?) {
        self.id = id
        self.user = user
        self.label = label
        self.salt = salt
        self.hash = hash
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case id, user, label, salt, hash
        case createdAt = "created_at", createdBy = "created_by", expiresAt = "expires_at", revokedAt = "revoked_at"
    }

    /// Whether it signs a request in at `time`.
    public func isLive(at time: Date) -> Bool {
        revokedAt == nil && (expiresAt.map { $0 > time } ?? true)
    }

    /// What the API shows of a token: everything but its salt and hash.
    public var summary: TokenSummary {
        TokenSummary(id: id, user: user, label: label, createdAt: createdAt, createdBy: createdBy, expiresAt: expiresAt,
                     revokedAt: revokedAt)
    }
}

/// A token as `GET /api/tokens` lists it.
public struct TokenSummary: Sendable, Codable, Hashable {
    public var id: String
    public var user: String
    public var label: String?
    public var createdAt: Date
    public var createdBy: String?
    public var expiresAt: Date?
    public var revokedAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, user, label
        case createdAt = "created_at", createdBy = "created_by", expiresAt = "expires_at", revokedAt = "revoked_at"
    }
}
