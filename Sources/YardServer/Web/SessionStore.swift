import Foundation

/// Browser sessions of the dashboard, in memory: a random id (the cookie)
/// maps to a session with its CSRF token and expiry. Neither the token of
/// the server nor anything derived from it leaves the server. A restart
/// signs everyone out. At most `capacity` live sessions; a new one past it
/// replaces the one that expires first.
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
    private var sessions: [String: Session] = [:]

    init(lifetime: TimeInterval = 12 * 3600, capacity: Int = 10_000, now: @escaping @Sendable () -> Date = { Date() }) {
        self.lifetime = lifetime
        self.capacity = capacity
        self.now = now
    }

    /// A new session: its id (for the cookie) and the session.
    func create(tokenID: String? = nil) -> (id: String, session: Session) {
        let time = now()
        sessions = sessions.filter { $0.value.expires > time }
        if sessions.count >= capacity, let first = sessions.min(by: { $0.value.expires < $1.value.expires })?.key {
            sessions[first] = nil
        }
        let id = Self.randomToken()
        let session = Session(csrf: Self.randomToken(), expires: time.addingTimeInterval(lifetime), tokenID: tokenID)
        sessions[id] = session
        return (id, session)
    }

    /// The live session with this id, if there is one.
    func session(_ id: String) -> Session? {
        guard let session = sessions[id] else { return nil }
        guard session.expires > now() else {
            sessions[id] = nil
            return nil
        }
        return session
    }

    func end(_ id: String) { sessions[id] = nil }

    /// 32 random bytes, base64url without padding (43 characters).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
