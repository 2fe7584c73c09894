import Foundation

/// What a user may do. `viewer` reads; `member` also submits and manages its
/// own jobs, sweeps and datasets; `admin` manages everyone's, the registry's
/// aliases, users and workers. Ordered: each role may do what the one below may.
public enum Role: String, Sendable, Codable, Hashable, CaseIterable, Comparable {
    case viewer, member, admin

    private var rank: Int {
        switch self {
        case .viewer: 0
        case .member: 1
        case .admin: 2
        }
    }

    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }

    /// `--role` / `"role"`: one of the roles, or a one-line error naming them.
    public static func parse(_ text: String, field: String = "role") throws(YardError) -> Role {
        guard let role = Role(rawValue: text.lowercased()) else {
            throw YardError.invalid(field, "\"\(text.prefix(40))\" is not a role; use \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return role
    }
}

/// Who a request acts for, once its credentials are checked: a user with
/// the role it has now (read at each request, so a role changed or a token
/// revoked takes effect at once) and the token it used (nil: the server's
/// own `YARD_TOKEN`, which is the admin's).
public struct Caller: Sendable, Hashable {
    public var name: String
    public var role: Role
    /// The public id of the token (never the token itself).
    public var tokenID: String?

    public init(name: String, role: Role, tokenID: String? = nil) {
        self.name = name
        self.role = role
        self.tokenID = tokenID
    }

    /// The user the server's `YARD_TOKEN` stands for (today's single token).
    public static let tokenAdminName = "admin"
    public static let tokenAdmin = Caller(name: tokenAdminName, role: .admin)

    /// The caller of the request being served, set by the server's auth for
    /// the request's handler; the job layer stamps the records it makes
    /// with it (a job's owner, who moved an alias). Nil outside a request
    /// (the sweep service, auto-registration) and on a server with no token.
    @TaskLocal public static var current: Caller?
}
