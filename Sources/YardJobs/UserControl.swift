import Foundation
import YardDomain
import YardStore

/// Users, their tokens and the audit trail: every change of a user or a
/// token, the check of a token a request presents, and the `audit` event of
/// each request that asked for a change. A token is shown once, when made;
/// the store keeps a salted hash of it.
public struct UserControl: Sendable {
    public let store: any JobStore
    let now: @Sendable () -> Date

    public init(store: any JobStore, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.now = now
    }

    /// A new user with a role. `admin` is the name of the server's own
    /// token's user (`YARD_TOKEN`) and cannot be taken.
    @discardableResult
    public func addUser(_ name: String, role: Role) async throws -> User {
        try User.validateName(name)
        guard name.lowercased() != Caller.tokenAdminName else {
            throw YardError(.conflict, field: "name", "\(Caller.tokenAdminName) is the user of the server's YARD_TOKEN; pick another name")
        }
        let user = User(name: name, role: role, createdAt: now(), createdBy: Caller.current?.name)
        try await store.addUser(user)
        return user
    }

    @discardableResult
    public func setRole(_ name: String, _ role: Role) async throws -> User {
        try await store.setRole(user: name, role)
    }

    /// Removes a user; their tokens stop working at once (revoked with it).
    public func removeUser(_ name: String) async throws {
        try await store.removeUser(name, at: now())
    }

    /// A new token for `user`: the token (shown once) and what is kept of it.
    public func createToken(user: String, label: String?, lifetime: TimeInterval?) async throws -> (token: String, record: TokenRecord) {
        if let label { try Self.validateLabel(label) }
        guard try await store.user(user) != nil else {
            throw YardError(.notFound, field: "user", "no user \(user.prefix(64)); add one with `yard users add NAME --role member`")
        }
        let time = now()
        let (token, record) = APIToken.generate(user: user, label: label, createdAt: time, createdBy: Caller.current?.name,
                                                expiresAt: lifetime.map { time.addingTimeInterval($0) })
        try await store.addToken(record)
        return (token.text, record)
    }

    @discardableResult
    public func revokeToken(_ id: String) async throws -> TokenRecord {
        guard APIToken.isTokenID(id) else {
            throw YardError(.notFound, field: "token", "no token \(id.prefix(40)); a token id is 12 hex digits, as `yard tokens list` shows")
        }
        return try await store.revokeToken(id: id, at: now())
    }

    /// Who a user token stands for now, or nil when it is not a live token
    /// of an existing user (unknown, wrong secret, revoked, expired, user
    /// removed). Read from the store at every call: a revocation or a role
    /// change holds from the next request.
    public func caller(token text: String) async throws -> Caller? {
        guard let token = APIToken.parse(text), let record = try await store.token(id: token.id), token.matches(record),
              record.isLive(at: now()), let user = try await store.user(record.user) else { return nil }
        return Caller(name: user.name, role: user.role, tokenID: record.id)
    }

    /// Why a token that was made by this server is refused now (revoked,
    /// expired, its user removed), for the one holding it; nil when it is
    /// not such a token (a wrong one learns nothing).
    public func refusal(token text: String) async throws -> String? {
        guard let token = APIToken.parse(text), let record = try await store.token(id: token.id), token.matches(record) else { return nil }
        if let revoked = record.revokedAt {
            return "token \(record.id) was revoked at \(Self.format(revoked)); ask an admin for a new one (`yard tokens create --user \(record.user)`)"
        }
        if let expires = record.expiresAt, expires <= now() {
            return "token \(record.id) expired at \(Self.format(expires)); ask an admin for a new one (`yard tokens create --user \(record.user)`)"
        }
        guard try await store.user(record.user) != nil else { return "token \(record.id): its user \(record.user) was removed" }
        return nil
    }

    static func format(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }

    /// As `caller(token:)`, for a token already checked once (a signed-in page's).
    public func caller(tokenID id: String) async throws -> Caller? {
        guard let record = try await store.token(id: id), record.isLive(at: now()), let user = try await store.user(record.user) else { return nil }
        return Caller(name: user.name, role: user.role, tokenID: record.id)
    }

    /// One request that asked for a change: who (nil: no valid credentials),
    /// what (method, the route it matched, the path), from where (the
    /// client's address) and how it ended (the HTTP status). Never a body,
    /// a query or a header: nothing secret is in it.
    public struct Request: Sendable {
        public var caller: Caller?
        public var method: String
        public var route: String?
        public var path: String
        public var address: String?
        public var status: Int
        public var message: String?

        public init(caller: Caller?, method: String, route: String?, path: String, address: String?, status: Int, message: String? = nil) {
            self.caller = caller
            self.method = method
            self.route = route
            self.path = path
            self.address = address
            self.status = status
            self.message = message
        }
    }

    /// The `audit` event of a request (its id: who asked, `anonymous` when unknown).
    @discardableResult
    public func audit(_ request: Request) async throws -> JobEvent {
        var body: [String: JSONValue] = ["method": .string(request.method), "path": .string(String(request.path.prefix(300))),
                                         "status": .int(request.status)]
        if let route = request.route { body["route"] = .string(route) }
        if let address = request.address { body["address"] = .string(address) }
        if let caller = request.caller {
            body["role"] = .string(caller.role.rawValue)
            if let token = caller.tokenID { body["token"] = .string(token) }
        }
        if let message = request.message { body["message"] = .string(LogLine.bounded(message, limit: 300)) }
        return try await store.appendEvent(.audit, id: request.caller?.name ?? Self.anonymous, type: "request", payload: .object(body))
    }

    /// Who the audit names for a request without valid credentials.
    public static let anonymous = "anonymous"

    static func validateLabel(_ label: String) throws(YardError) {
        guard !label.isEmpty, label.count <= 100, label.allSatisfy({ !$0.isNewline && $0.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7f } }) else {
            throw YardError.invalid("name", "a token's name is 1-100 characters on one line, without control characters")
        }
    }
}
