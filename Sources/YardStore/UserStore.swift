import Foundation
import YardDomain

/// Users and their API tokens. A token is kept only as its `TokenRecord`
/// (salted hash), never as text. Each change is written with a `user`
/// event (the user's name as its id) in the same transaction; the events
/// carry token ids and labels, never a hash.
public protocol UserStore: Sendable {
    /// A new user; a name taken (regardless of case) is a `.conflict`. Event `added`.
    func addUser(_ user: User) async throws
    func user(_ name: String) async throws -> User?
    /// By name.
    func users() async throws -> [User]
    /// A user's new role; `.notFound` for an unknown user. Event `role`.
    @discardableResult
    func setRole(user name: String, _ role: Role) async throws -> User
    /// Removes a user and revokes their live tokens at `time`; `.notFound`
    /// for an unknown user. Event `removed`.
    func removeUser(_ name: String, at time: Date) async throws
    /// Keeps a new token's record; `.notFound` for an unknown user. Event `token` (`created`).
    func addToken(_ token: TokenRecord) async throws
    func token(id: String) async throws -> TokenRecord?
    /// Oldest first; one user's, or everyone's.
    func tokens(user: String?) async throws -> [TokenRecord]
    /// Marks a token revoked at `time` (once: a revoked one stays as it
    /// was); `.notFound` for an unknown id. Event `token` (`revoked`).
    @discardableResult
    func revokeToken(id: String, at time: Date) async throws -> TokenRecord
}

/// The bodies of `user` events: what changed, never a token's hash or salt.
enum UserEvents {
    static func added(_ user: User) -> JSONValue {
        .object(["role": .string(user.role.rawValue), "by": user.createdBy.map(JSONValue.string) ?? .null])
    }

    static func role(_ user: User, previous: Role) -> JSONValue {
        .object(["role": .string(user.role.rawValue), "previous": .string(previous.rawValue)])
    }

    static func removed(revoked: [String]) -> JSONValue {
        .object(["revoked_tokens": .array(revoked.map(JSONValue.string))])
    }

    static func token(_ record: TokenRecord, _ action: String) -> JSONValue {
        var body: [String: JSONValue] = ["action": .string(action), "token": .string(record.id)]
        if let label = record.label { body["label"] = .string(label) }
        if let expires = record.expiresAt { body["expires_at"] = .double(expires.timeIntervalSince1970) }
        return .object(body)
    }

    static func unknownUser(_ name: String) -> YardError {
        YardError(.notFound, field: "user", "no user \(name.prefix(64)); `yard users list` lists them")
    }

    static func unknownToken(_ id: String) -> YardError {
        YardError(.notFound, field: "token", "no token \(id.prefix(40)); `yard tokens list` lists them")
    }

    static func taken(_ name: String) -> YardError {
        YardError(.conflict, field: "name", "a user \(name) exists already; pick another name or change its role with `yard users role`")
    }
}

extension JobRecords {
    public func jobs(limit: Int, state: JobState?) async throws -> [Job] { try await jobs(limit: limit, state: state, owner: nil) }
}

extension RegistryStore {
    @discardableResult
    public func setModelAlias(name: String, alias: String, version: String?, reason: String, time: Date) async throws -> AliasChange {
        try await setModelAlias(name: name, alias: alias, version: version, reason: reason, by: nil, time: time)
    }
}
