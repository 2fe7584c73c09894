import Foundation
import HTTPTypes
import YardDomain
import YardJobs

/// What each route needs of its caller's role, in one table keyed by the
/// route the router matched (`METHOD /template`), never by the raw path.
/// Reading (GET) needs any role unless listed; a change needs the role its
/// rule says, and a change with no rule needs an admin, so a new route is
/// closed until it is given one (a test checks every changing route has one).
enum AccessPolicy {
    enum Need: Sendable, Equatable, CustomStringConvertible {
        /// Any signed-in user (a viewer too).
        case read
        case member
        /// A member for its own job (the `{id}` of the route), an admin for any.
        case ownJob
        /// A member for its own sweep, an admin for any.
        case ownSweep
        case admin

        var description: String {
            switch self {
            case .read: "viewer"
            case .member: "member"
            case .ownJob: "member (its own jobs) or admin"
            case .ownSweep: "member (its own sweeps) or admin"
            case .admin: "admin"
            }
        }
    }

    static let rules: [String: Need] = [
        "POST /api/jobs": .member,
        "POST /api/jobs/{id}/stop": .ownJob,
        "POST /api/jobs/{id}/resume": .ownJob,
        // A rerun is a new job of the caller's from one of its own (it never registers or deploys).
        "POST /api/jobs/{id}/rerun": .ownJob,
        "POST /api/sweeps": .member,
        "POST /api/sweeps/{id}/stop": .ownSweep,
        "POST /api/datasets": .member,
        // A version from a succeeded job, and its weights in another format.
        "POST /api/models": .member,
        "POST /api/models/{name}/versions/{version}/export": .member,
        // What is served: the registry's aliases and serving settings.
        "POST /api/models/{name}/aliases": .admin,
        "DELETE /api/models/{name}/aliases/{alias}": .admin,
        "POST /api/models/{name}/aliases/{alias}/rollback": .admin,
        "PUT /api/models/{name}/settings": .admin,
        // A prediction changes nothing: whoever may read the models may use them.
        "POST /api/predict/{name}": .read,
        "GET /api/users": .admin,
        "POST /api/users": .admin,
        "PATCH /api/users/{name}": .admin,
        "DELETE /api/users/{name}": .admin,
        "GET /api/tokens": .admin,
        "POST /api/tokens": .admin,
        "DELETE /api/tokens/{id}": .admin,
    ]

    /// "a member", "an admin".
    static func article(_ noun: String) -> String {
        (noun.first.map { "aeiou".contains($0) } == true ? "an " : "a ") + noun
    }

    static func need(_ method: HTTPRequest.Method, route: String) -> Need {
        rules["\(method) \(route)"] ?? (BrowserRequest.isSafe(method) ? .read : .admin)
    }

    /// Throws a 403 naming the caller's role and what the route needs, or
    /// returns when the caller may. `owner` reads the owner of a job or a
    /// sweep (nil: there is none, and the handler answers 404).
    static func authorise(_ caller: Caller, _ method: HTTPRequest.Method, route: String, id: String?,
                          owner: (Need, String) async throws -> String??) async throws {
        let need = need(method, route: route)
        let allowed: Bool
        switch need {
        case .read: allowed = true
        case .member: allowed = caller.role >= .member
        case .admin: allowed = caller.role == .admin
        case .ownJob, .ownSweep:
            if caller.role == .admin { return }
            guard caller.role == .member, let id else { allowed = false; break }
            guard let found = try await owner(need, id) else { return }  // no such job or sweep: the handler says so
            guard found == caller.name else {
                let kind = need == .ownJob ? "job" : "sweep"
                throw YardError(.forbidden, field: "role",
                                "forbidden: \(caller.name) is a member and may change only its own \(kind)s; \(kind) \(id) is \(found.map { "\($0)'s" } ?? "nobody's (made before users)"); ask an admin")
            }
            return
        }
        guard allowed else {
            throw YardError(.forbidden, field: "role",
                            "forbidden: \(caller.name) is \(article(caller.role.rawValue)); \(method) \(route) needs \(article(need.description)); ask an admin for another role")
        }
    }
}
