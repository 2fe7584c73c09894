import Foundation
import YardDomain

/// `UserStore` in memory.
extension MemoryJobStore {
    public func addUser(_ user: User) throws {
        if let taken = usersByName.keys.first(where: { $0.lowercased() == user.name.lowercased() }) { throw UserEvents.taken(taken) }
        usersByName[user.name] = user
        appendEvent(.user, id: user.name, type: "added", payload: UserEvents.added(user))
    }

    public func user(_ name: String) -> User? { usersByName[name] }

    public func users() -> [User] { usersByName.values.sorted { $0.name < $1.name } }

    public func setRole(user name: String, _ role: Role) throws -> User {
        guard var user = usersByName[name] else { throw UserEvents.unknownUser(name) }
        let previous = user.role
        user.role = role
        usersByName[name] = user
        appendEvent(.user, id: name, type: "role", payload: UserEvents.role(user, previous: previous))
        return user
    }

    public func removeUser(_ name: String, at time: Date) throws {
        guard usersByName[name] != nil else { throw UserEvents.unknownUser(name) }
        usersByName[name] = nil
        var revoked: [String] = []
        for (id, record) in tokensByID where record.user == name && record.revokedAt == nil {
            tokensByID[id]?.revokedAt = time
            revoked.append(id)
        }
        appendEvent(.user, id: name, type: "removed", payload: UserEvents.removed(revoked: revoked.sorted()))
    }

    public func addToken(_ token: TokenRecord) throws {
        guard usersByName[token.user] != nil else { throw UserEvents.unknownUser(token.user) }
        guard tokensByID[token.id] == nil else { throw YardError(.conflict, field: "token", "a token \(token.id) exists already") }
        tokensByID[token.id] = token
        appendEvent(.user, id: token.user, type: "token", payload: UserEvents.token(token, "created"))
    }

    public func token(id: String) -> TokenRecord? { tokensByID[id] }

    public func tokens(user: String?) -> [TokenRecord] {
        tokensByID.values.filter { user == nil || $0.user == user }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    public func revokeToken(id: String, at time: Date) throws -> TokenRecord {
        guard var record = tokensByID[id] else { throw UserEvents.unknownToken(id) }
        guard record.revokedAt == nil else { return record }
        record.revokedAt = time
        tokensByID[id] = record
        appendEvent(.user, id: record.user, type: "token", payload: UserEvents.token(record, "revoked"))
        return record
    }
}

extension MemoryJobStore {
    public func saveSession(_ session: SessionRecord, now: Date) {
        sessionsByKey = sessionsByKey.filter { $0.value.expiresAt > now }
        sessionsByKey[session.key] = session
    }

    public func sessions(liveAt now: Date) -> [SessionRecord] {
        sessionsByKey.values.filter { $0.expiresAt > now }.sorted { $0.expiresAt < $1.expiresAt }
    }

    public func deleteSession(key: String) { sessionsByKey[key] = nil }
}
