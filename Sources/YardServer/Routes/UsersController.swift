import Foundation
import Hummingbird
import YardDomain
import YardJobs
import YardStore

/// `/api/users`, `/api/tokens` (an admin's) and `/api/audit` (everyone's to
/// read, like the rest of the event log): users and their roles, API tokens
/// (the new token is in the answer of its creation and nowhere else), and
/// the audit trail of requests that asked for a change.
struct UsersController<Context: RequestContext> {
    let users: UserControl
    var store: any JobStore { users.store }

    func addRoutes(to router: some RouterMethods<Context>) {
        router.get("/api/users", use: list)
        router.post("/api/users", use: add)
        router.patch("/api/users/{name}", use: change)
        router.delete("/api/users/{name}", use: remove)
        router.get("/api/tokens", use: tokens)
        router.post("/api/tokens", use: createToken)
        router.delete("/api/tokens/{id}", use: revoke)
        router.get("/api/audit", use: audit)
    }

    struct NewUser: Decodable { let name: String; let role: String }
    struct RoleChange: Decodable { let role: String }
    struct NewToken: Decodable {
        let user: String
        let name: String?
        /// `30d`, `12h`, `2w`; absent: the token does not expire.
        let expires: String?
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        try JSONResponse.make(["users": try await store.users()])
    }

    @Sendable func add(_ request: Request, context: Context) async throws -> Response {
        let body = try await Self.body(NewUser.self, request, example: #"{"name": "alice", "role": "member"}"#)
        let user = try await users.addUser(body.name, role: try Role.parse(body.role))
        return try JSONResponse.make(user, status: .created)
    }

    @Sendable func change(_ request: Request, context: Context) async throws -> Response {
        let body = try await Self.body(RoleChange.self, request, example: #"{"role": "viewer"}"#)
        return try JSONResponse.make(try await users.setRole(try name(context), try Role.parse(body.role)))
    }

    @Sendable func remove(_ request: Request, context: Context) async throws -> Response {
        try await users.removeUser(try name(context))
        return Response(status: .noContent)
    }

    @Sendable func tokens(_ request: Request, context: Context) async throws -> Response {
        let user = Query.string(request, "user")
        return try JSONResponse.make(["tokens": try await store.tokens(user: user).map(\.summary)])
    }

    /// The token itself is in this answer only (`token`); the store keeps its hash.
    @Sendable func createToken(_ request: Request, context: Context) async throws -> Response {
        let body = try await Self.body(NewToken.self, request, example: #"{"user": "alice", "name": "laptop", "expires": "30d"}"#)
        let lifetime = try body.expires.map { try APIToken.lifetime($0) }
        let (token, record) = try await users.createToken(user: body.user, label: body.name, lifetime: lifetime)
        guard case .object(var answer) = try JSONResponse.value(record.summary) else { throw YardError(.internal, "token encoding") }
        answer["token"] = .string(token)
        return try JSONResponse.make(JSONValue.object(answer), status: .created)
    }

    @Sendable func revoke(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("id")
        return try JSONResponse.make(try await users.revokeToken(id).summary)
    }

    /// The last `limit` (default 100) audit events, oldest first; `?user=` only that user's.
    @Sendable func audit(_ request: Request, context: Context) async throws -> Response {
        let limit = try Query.int(request, "limit", in: 1...10_000) ?? 100
        let user = Query.string(request, "user")
        let filter = EventFilter(entity: .audit, id: user)
        // Read forward in pages, keeping the last `limit`.
        var kept: [JobEvent] = []
        var cursor: Int64 = 0
        while true {
            let page = try await store.events(after: cursor, limit: 1000, filter: filter)
            kept.append(contentsOf: page)
            if kept.count > limit { kept.removeFirst(kept.count - limit) }
            guard page.count == 1000, let last = page.last else { break }
            cursor = last.id
        }
        return try JSONResponse.make(["events": kept])
    }

    private func name(_ context: Context) throws -> String {
        let name = try context.parameters.require("name")
        guard (try? User.validateName(name)) != nil else { throw UserEventsHint.noUser(name) }
        return name
    }

    /// A small JSON body (at most 4 KiB) of `T`, or a one-line error with an example.
    static func body<T: Decodable>(_ type: T.Type, _ request: Request, example: String) async throws -> T {
        var request = request
        let data: ByteBuffer
        do { data = try await request.collectBody(upTo: 4096) } catch {
            throw YardError(.invalidInput, field: "body", "body: larger than 4 KiB; send \(example)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(data.readableBytesView))
        } catch let DecodingError.keyNotFound(key, _) {
            throw YardError.invalid(key.stringValue, "missing; send \(example)")
        } catch let DecodingError.typeMismatch(_, context) {
            throw YardError.invalid(context.codingPath.last?.stringValue ?? "body", "wrong type; send \(example)")
        } catch {
            throw YardError(.invalidInput, field: "body", "body: not the JSON expected; send \(example)")
        }
    }
}

enum UserEventsHint {
    static func noUser(_ name: String) -> YardError {
        YardError(.notFound, field: "name", "no user \(name.prefix(64)); `yard users list` lists them")
    }
}
