import Foundation

/// A signed-in browser of the dashboard, as the store keeps it so that a
/// restart signs no one out. Kept under the SHA-256 of the session's id
/// (the cookie's value), never the id: a copy of the data dir (a backup)
/// holds nothing a browser could send back as its cookie.
public struct SessionRecord: Codable, Sendable, Equatable {
    /// Lowercase hex SHA-256 of the session id.
    public var key: String
    /// The token the pages send with every change (`X-CSRF-Token`); useless without the cookie.
    public var csrf: String
    public var expiresAt: Date
    /// The user token it was signed in with; nil: the server's own token.
    public var tokenID: String?
    /// Signed in with the server's own token: HMAC-SHA256 of `key` keyed
    /// with that token. A start with another `YARD_TOKEN` finds it does not
    /// match and forgets the session (rotating a leaked token signs out
    /// what was signed in with it).
    public var serverProof: String?

    public init(key: String, csrf: String, expiresAt: Date, tokenID: String?, serverProof: String? = nil) {
        self.key = key
        self.csrf = csrf
        self.expiresAt = expiresAt
        self.tokenID = tokenID
        self.serverProof = serverProof
    }
}

/// The dashboard's sessions (`SessionStore` in the server reads them once
/// at start and writes through).
public protocol SessionRecords: Sendable {
    /// Keeps a new session and forgets every one that expired by `now`.
    func saveSession(_ session: SessionRecord, now: Date) async throws
    /// The sessions that have not expired by `now`.
    func sessions(liveAt now: Date) async throws -> [SessionRecord]
    /// Forgets a session (signed out, or its token revoked); unknown keys are no error.
    func deleteSession(key: String) async throws
}
