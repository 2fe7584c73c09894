import Foundation
import GRDB
import YardDomain

/// `UserStore` on the embedded database (`user` and `api_token` tables,
/// migration `v11-users`); each change with its `user` event in the same transaction.
extension SQLiteJobStore {
    public func addUser(_ user: User) async throws {
        let record = try JSONCoding.string(user)
        let time = now(), feed = self.feed
        try await db.write { db in
            if let taken = try String.fetchOne(db, sql: "SELECT name FROM user WHERE name = ? COLLATE NOCASE", arguments: [user.name]) {
                throw UserEvents.taken(taken)
            }
            try db.execute(sql: "INSERT INTO user (name, record) VALUES (?, ?)", arguments: [user.name, record])
            _ = try Self.insertEvent(db, jobID: user.name, type: "added", payload: UserEvents.added(user), time: time, feed: feed, entity: .user)
        }
    }

    public func user(_ name: String) async throws -> User? {
        let text = try await db.read { db in try String.fetchOne(db, sql: "SELECT record FROM user WHERE name = ?", arguments: [name]) }
        return try text.map { try JSONCoding.decode(User.self, $0) }
    }

    public func users() async throws -> [User] {
        let texts = try await db.read { db in try String.fetchAll(db, sql: "SELECT record FROM user ORDER BY name") }
        return try texts.map { try JSONCoding.decode(User.self, $0) }
    }

    public func setRole(user name: String, _ role: Role) async throws -> User {
        let time = now(), feed = self.feed
        return try await db.write { db in
            guard let text = try String.fetchOne(db, sql: "SELECT record FROM user WHERE name = ?", arguments: [name]) else {
                throw UserEvents.unknownUser(name)
            }
            var user = try JSONCoding.decode(User.self, text)
            let previous = user.role
            user.role = role
            try db.execute(sql: "UPDATE user SET record = ? WHERE name = ?", arguments: [try JSONCoding.string(user), name])
            _ = try Self.insertEvent(db, jobID: name, type: "role", payload: UserEvents.role(user, previous: previous), time: time, feed: feed, entity: .user)
            return user
        }
    }

    public func removeUser(_ name: String, at time: Date) async throws {
        let feed = self.feed, now = self.now()
        try await db.write { db in
            try db.execute(sql: "DELETE FROM user WHERE name = ?", arguments: [name])
            guard db.changesCount == 1 else { throw UserEvents.unknownUser(name) }
            var revoked: [String] = []
            for text in try String.fetchAll(db, sql: "SELECT record FROM api_token WHERE user = ? AND revoked = 0 ORDER BY id", arguments: [name]) {
                var record = try JSONCoding.decode(TokenRecord.self, text)
                record.revokedAt = time
                try db.execute(sql: "UPDATE api_token SET record = ?, revoked = 1 WHERE id = ?", arguments: [try JSONCoding.string(record), record.id])
                revoked.append(record.id)
            }
            _ = try Self.insertEvent(db, jobID: name, type: "removed", payload: UserEvents.removed(revoked: revoked), time: now, feed: feed, entity: .user)
        }
    }

    public func addToken(_ token: TokenRecord) async throws {
        let record = try JSONCoding.string(token)
        let time = now(), feed = self.feed
        try await db.write { db in
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM user WHERE name = ?", arguments: [token.user]) != nil else { throw UserEvents.unknownUser(token.user) }
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM api_token WHERE id = ?", arguments: [token.id]) == nil else {
                throw YardError(.conflict, field: "token", "a token \(token.id) exists already")
            }
            try db.execute(sql: "INSERT INTO api_token (id, user, created_at, revoked, record) VALUES (?, ?, ?, 0, ?)",
                           arguments: [token.id, token.user, token.createdAt.timeIntervalSince1970, record])
            _ = try Self.insertEvent(db, jobID: token.user, type: "token", payload: UserEvents.token(token, "created"), time: time, feed: feed, entity: .user)
        }
    }

    public func token(id: String) async throws -> TokenRecord? {
        let text = try await db.read { db in try String.fetchOne(db, sql: "SELECT record FROM api_token WHERE id = ?", arguments: [id]) }
        return try text.map { try JSONCoding.decode(TokenRecord.self, $0) }
    }

    public func tokens(user: String?) async throws -> [TokenRecord] {
        let texts = try await db.read { db in
            try String.fetchAll(db, sql: "SELECT record FROM api_token WHERE (?1 IS NULL OR user = ?1) ORDER BY created_at, id", arguments: [user])
        }
        return try texts.map { try JSONCoding.decode(TokenRecord.self, $0) }
    }

    public func revokeToken(id: String, at time: Date) async throws -> TokenRecord {
        let now = self.now(), feed = self.feed
        return try await db.write { db in
            guard let text = try String.fetchOne(db, sql: "SELECT record FROM api_token WHERE id = ?", arguments: [id]) else { throw UserEvents.unknownToken(id) }
            var record = try JSONCoding.decode(TokenRecord.self, text)
            guard record.revokedAt == nil else { return record }
            record.revokedAt = time
            try db.execute(sql: "UPDATE api_token SET record = ?, revoked = 1 WHERE id = ?", arguments: [try JSONCoding.string(record), id])
            _ = try Self.insertEvent(db, jobID: record.user, type: "token", payload: UserEvents.token(record, "revoked"), time: now, feed: feed, entity: .user)
            return record
        }
    }
}

/// `SessionRecords` on the embedded database (`browser_session`, migration `v14-sessions`).
extension SQLiteJobStore {
    public func saveSession(_ session: SessionRecord, now: Date) async throws {
        let record = try JSONCoding.string(session)
        try await db.write { db in
            try db.execute(sql: "DELETE FROM browser_session WHERE expires_at <= ?", arguments: [now.timeIntervalSince1970])
            try db.execute(sql: "INSERT OR REPLACE INTO browser_session (key, expires_at, record) VALUES (?, ?, ?)",
                           arguments: [session.key, session.expiresAt.timeIntervalSince1970, record])
        }
    }

    public func sessions(liveAt now: Date) async throws -> [SessionRecord] {
        let texts = try await db.read { db in
            try String.fetchAll(db, sql: "SELECT record FROM browser_session WHERE expires_at > ? ORDER BY expires_at",
                                arguments: [now.timeIntervalSince1970])
        }
        return try texts.map { try JSONCoding.decode(SessionRecord.self, $0) }
    }

    public func deleteSession(key: String) async throws {
        try await db.write { db in try db.execute(sql: "DELETE FROM browser_session WHERE key = ?", arguments: [key]) }
    }
}
