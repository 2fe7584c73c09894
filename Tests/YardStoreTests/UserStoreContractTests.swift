import Foundation
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// `UserStore`: the same expectations for every driver.
@Suite("UserStore contract")
struct UserStoreContractTests {
    typealias Driver = JobStoreContractTests.Driver

    static func user(_ name: String, _ role: Role) -> User {
        User(name: name, role: role, createdAt: Date(timeIntervalSince1970: 10), createdBy: "admin")
    }

    /// Names are unique regardless of case; a role changes; removing a
    /// user revokes its live tokens; each change is a `user` event.
    @Test(arguments: Driver.allCases)
    func usersAreUniqueAndTheirChangesAreEvents(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        try await store.addUser(Self.user("alice", .member))
        try await store.addUser(Self.user("bob", .viewer))
        await #expect(throws: YardError.self) { try await store.addUser(Self.user("ALICE", .admin)) }
        #expect(try await store.users().map(\.name) == ["alice", "bob"])
        #expect(try await store.setRole(user: "bob", .member).role == .member)
        #expect(try await store.user("bob")?.role == .member)
        await #expect(throws: YardError.self) { try await store.setRole(user: "carol", .admin) }

        let (_, live) = APIToken.generate(user: "alice", label: "laptop", createdAt: Date(timeIntervalSince1970: 20), createdBy: "admin", expiresAt: nil)
        let (_, other) = APIToken.generate(user: "alice", label: nil, createdAt: Date(timeIntervalSince1970: 21), createdBy: "admin", expiresAt: nil)
        try await store.addToken(live)
        try await store.addToken(other)
        try await store.revokeToken(id: other.id, at: Date(timeIntervalSince1970: 30))
        try await store.removeUser("alice", at: Date(timeIntervalSince1970: 40))
        #expect(try await store.user("alice") == nil)
        let tokens = try await store.tokens(user: "alice")
        #expect(tokens.map(\.id) == [live.id, other.id])
        #expect(tokens.map { $0.revokedAt?.timeIntervalSince1970 } == [40, 30], "removing revokes what was live; a revoked one keeps its time")
        await #expect(throws: YardError.self) { try await store.removeUser("alice", at: Date()) }

        let events = try await store.events(after: 0, limit: 100, filter: EventFilter(entity: .user))
        #expect(events.map { "\($0.jobID) \($0.type) \($0.payload["action"]?.stringValue ?? $0.payload["role"]?.stringValue ?? "")" } == [
            "alice added member", "bob added viewer", "bob role member", "alice token created", "alice token created",
            "alice token revoked", "alice removed ",
        ])
        #expect(events.last?.payload["revoked_tokens"] == .array([.string(live.id)]))
    }

    /// A token's record is kept and found by id; it needs an existing user;
    /// revoking is once (again: the same record, no event); no event carries its hash.
    @Test(arguments: Driver.allCases)
    func tokensAreKeptAsRecordsAndRevokedOnce(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        let (token, record) = APIToken.generate(user: "dana", label: "ci", createdAt: Date(timeIntervalSince1970: 20), createdBy: "admin",
                                                expiresAt: Date(timeIntervalSince1970: 1000))
        await #expect(throws: YardError.self) { try await store.addToken(record) }
        try await store.addUser(Self.user("dana", .member))
        try await store.addToken(record)
        await #expect(throws: YardError.self) { try await store.addToken(record) }
        let kept = try #require(try await store.token(id: token.id))
        #expect(kept == record && token.matches(kept))
        #expect(kept.isLive(at: Date(timeIntervalSince1970: 999)) && !kept.isLive(at: Date(timeIntervalSince1970: 1000)))
        let revoked = try await store.revokeToken(id: token.id, at: Date(timeIntervalSince1970: 50))
        let again = try await store.revokeToken(id: token.id, at: Date(timeIntervalSince1970: 60))
        #expect(revoked.revokedAt == Date(timeIntervalSince1970: 50) && again == revoked)
        #expect(try await store.token(id: token.id)?.isLive(at: Date(timeIntervalSince1970: 51)) == false)
        await #expect(throws: YardError.self) { try await store.revokeToken(id: "000000000000", at: Date()) }
        #expect(try await store.tokens(user: nil).count == 1)
        #expect(try await store.tokens(user: "nobody").isEmpty)
        let events = try await store.events(after: 0, limit: 100, filter: EventFilter(entity: .user, types: ["token"]))
        #expect(events.count == 2)
        let text = String(decoding: try JSONEncoder().encode(events), as: UTF8.self)
        #expect(!text.contains(record.hash) && !text.contains(record.salt) && !text.contains(token.text))
    }

    /// `jobs(limit:state:owner:)` filters by owner before the limit; an alias move keeps who made it.
    @Test(arguments: Driver.allCases)
    func jobsByOwnerAndAliasMovesByWhom(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        for (i, owner) in ["alice", "bob", "alice", nil].enumerated() {
            var job = try JobStoreContractTests.job("j\(i)", at: Double(i))
            job.owner = owner
            try await store.insert(job, secrets: [:])
        }
        #expect(try await store.jobs(limit: 10, state: nil, owner: "alice").map(\.id) == ["j2", "j0"])
        #expect(try await store.jobs(limit: 1, state: .queued, owner: "bob").map(\.id) == ["j1"])
        #expect(try await store.jobs(limit: 10, state: nil, owner: nil).count == 4)
        #expect(try await store.job("j0")?.owner == "alice")

        var draft = ModelVersion(name: "det", version: "", jobID: "j0", runID: "", source: "x", createdAt: Date(timeIntervalSince1970: 1))
        draft.createdBy = "alice"
        let (version, _) = try await store.createModelVersion(draft)
        #expect(version.createdBy == "alice")
        try await store.setModelAlias(name: "det", alias: "production", version: "1", reason: "alias", by: "root", time: Date(timeIntervalSince1970: 2))
        try await store.setModelAlias(name: "det", alias: "production", version: nil, reason: "removed", time: Date(timeIntervalSince1970: 3))
        #expect(try await store.aliasHistory(name: "det", alias: nil, limit: 10).map(\.by) == [nil, "root"])
        let moves = try await store.events(after: 0, limit: 10, filter: EventFilter(entity: .model, types: ["alias"]))
        #expect(moves.map { $0.payload["by"]?.stringValue } == ["root", nil])
    }
}
