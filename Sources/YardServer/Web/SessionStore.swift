import Crypto
import Foundation
import YardDomain
import YardStore

/// Browser sessions of the dashboard: a random id (the cookie) maps to a
/// session with its CSRF token and expiry. Neither the token of the server
/// nor anything derived from it leaves the server. Sessions live in memory
/// and, written through, in the store (`records`) under the SHA-256 of
/// their id, read back at the first request after a start: a restart signs
/// no one out, and the data dir holds no cookie. At most `capacity` live
/// sessions; a new one past it replaces the one that expires first.
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
    /// By key (the SHA-256 of the id); nil until read from `records`.
    private var sessions: [String: Session]?

    init(records: (any SessionRecords)? = nil, lifetime: TimeInterval = 12 * 3600, capacity: Int = 10_000,
         now: @escaping @Sendable () -> Date = { Date() }) {
        self.records = records
        self.lifetime = lifetime
        self.capacity = capacity
        self.now = now
    }

    /// A new session: its id (for the cookie) and the session. Kept in the
    /// store before it is handed out.
    /// Changes `sessions` in place, never from a copy taken before an
    /// await: sign-ins running at once each keep their session.
    func create(tokenID: String? = nil) async throws -> (id: String, session: Session) {
        _ = try await loaded()
        let time = now()
        sessions = sessions?.filter { $0.value.expires > time }
        if let live = sessions, live.count >= capacity, let first = live.min(by: { $0.value.expires < $1.value.expires })?.key {
            sessions?[first] = nil
            try await records?.deleteSession(key: first)
        }
        let id = Self.randomToken()
        let session = Session(csrf: Self.randomToken(), expires: time.addingTimeInterval(lifetime), tokenID: tokenID)
        let key = Self.key(id)
        try await records?.saveSession(SessionRecord(key: key, csrf: session.csrf, expiresAt: session.expires, tokenID: tokenID), now: time)
        sessions?[key] = session
        return (id, session)
    }

    /// The live session with this id, if there is one.
    func session(_ id: String) async throws -> Session? {
        let key = Self.key(id)
        guard let session = try await loaded()[key] else { return nil }
        guard session.expires > now() else {
            sessions?[key] = nil
            try await records?.deleteSession(key: key)
            return nil
        }
        return session
    }

    func end(_ id: String) async throws {
        let key = Self.key(id)
        _ = try await loaded()
        sessions?[key] = nil
        try await records?.deleteSession(key: key)
    }

    /// The sessions, read from the store the first time.
    private func loaded() async throws -> [String: Session] {
        if let sessions { return sessions }
        var read: [String: Session] = [:]
        for record in try await records?.sessions(liveAt: now()) ?? [] {
            read[record.key] = Session(csrf: record.csrf, expires: record.expiresAt, tokenID: record.tokenID)
        }
        // Another call may have read them while this one waited: keep the first.
        if let sessions { return sessions }
        sessions = read
        return read
    }

    /// What a session is kept under: the SHA-256 of its id, in hex.
    static func key(_ id: String) -> String { SHA256.hash(data: Data(id.utf8)).hex }

    /// 32 random bytes, base64url without padding (43 characters).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
