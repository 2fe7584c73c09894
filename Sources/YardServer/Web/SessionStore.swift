import Crypto
import Foundation
import YardDomain
import YardStore

/// Browser sessions of the dashboard: a random id (the cookie) maps to a
/// session with its CSRF token and expiry. Neither the token of the server
/// nor anything derived from it leaves the server. Sessions live in memory
/// and, written through, in the store (`records`) under the SHA-256 of
/// their id, read back at the first request after a start: a restart signs
/// no one out, and the data dir holds no cookie. A session signed in with
/// the server's own token is read back only while that token is the same
/// (`SessionRecord.serverProof`). At most `capacity` live sessions; past
/// it, the ones that expire first go. A change reaches the store before
/// memory: a failed write leaves nothing the next start would read back.
actor SessionStore {
    struct Session: Sendable {
        let csrf: String
        let expires: Date
        /// The id of the user token it was signed in with (nil: the server's
        /// own token); each request checks that token is still live.
        var tokenID: String?
    }

    static let cookieName = "yard_session"
    let lifetime: TimeInterval
    let capacity: Int
    private let now: @Sendable () -> Date
    private let records: (any SessionRecords)?
    /// The server's own token (`YARD_TOKEN`), which `serverProof` is keyed with.
    private let serverToken: String?
    /// By key (the SHA-256 of the id); nil until read from `records`.
    private var sessions: [String: Session]?

    init(records: (any SessionRecords)? = nil, serverToken: String? = nil, lifetime: TimeInterval = 12 * 3600, capacity: Int = 10_000,
         now: @escaping @Sendable () -> Date = { Date() }) {
        self.records = records
        self.serverToken = serverToken
        self.lifetime = lifetime
        self.capacity = capacity
        self.now = now
    }

    /// A new session: its id (for the cookie) and the session, kept in the
    /// store before it is handed out. Changes `sessions` in place, never
    /// from a copy taken before an await: sign-ins running at once each
    /// keep their session.
    func create(tokenID: String? = nil) async throws -> (id: String, session: Session) {
        _ = try await loaded()
        let time = now()
        sessions = sessions?.filter { $0.value.expires > time }
        let id = Self.randomToken()
        let session = Session(csrf: Self.randomToken(), expires: time.addingTimeInterval(lifetime), tokenID: tokenID)
        let key = Self.key(id)
        let proof = tokenID == nil ? serverToken.map { Self.proof(key, token: $0) } : nil
        try await records?.saveSession(SessionRecord(key: key, csrf: session.csrf, expiresAt: session.expires, tokenID: tokenID, serverProof: proof),
                                       now: time)
        sessions?[key] = session
        // Checked after the wait: sign-ins at once may each have seen room.
        while let live = sessions, live.count > capacity, let first = live.min(by: { $0.value.expires < $1.value.expires })?.key {
            try await records?.deleteSession(key: first)
            sessions?[first] = nil
        }
        return (id, session)
    }

    /// The live session with this id, if there is one.
    func session(_ id: String) async throws -> Session? {
        let key = Self.key(id)
        guard let session = try await loaded()[key] else { return nil }
        guard session.expires > now() else {
            try await records?.deleteSession(key: key)
            sessions?[key] = nil
            return nil
        }
        return session
    }

    func end(_ id: String) async throws {
        let key = Self.key(id)
        _ = try await loaded()
        try await records?.deleteSession(key: key)
        sessions?[key] = nil
    }

    /// The sessions, read from the store the first time.
    private func loaded() async throws -> [String: Session] {
        if let sessions { return sessions }
        var read: [String: Session] = [:]
        var stale: [String] = []
        for record in try await records?.sessions(liveAt: now()) ?? [] {
            if record.tokenID == nil {
                // Signed in with the server's token: only if it is still this one.
                guard let token = serverToken, record.serverProof == Self.proof(record.key, token: token) else {
                    stale.append(record.key)
                    continue
                }
            }
            read[record.key] = Session(csrf: record.csrf, expires: record.expiresAt, tokenID: record.tokenID)
        }
        for key in stale { try await records?.deleteSession(key: key) }
        // Another call may have read them while this one waited: keep the first.
        if let sessions { return sessions }
        sessions = read
        return read
    }

    /// What a session is kept under: the SHA-256 of its id, in hex.
    static func key(_ id: String) -> String { SHA256.hash(data: Data(id.utf8)).hex }

    /// `SessionRecord.serverProof`: the key, authenticated with the server's token.
    static func proof(_ key: String, token: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(key.utf8), using: SymmetricKey(data: Data(token.utf8))).hex
    }

    /// 32 random bytes, base64url without padding (43 characters).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
