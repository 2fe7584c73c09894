import ArgumentParser
import Foundation
import YardDomain

/// `yard users`: who may use the server and with which role (an admin's
/// token: YARD_TOKEN, or a token of a user whose role is admin).
struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add, list, change and remove users (roles: viewer reads; member submits and manages its own jobs, sweeps and datasets; admin manages everything).",
        subcommands: [List.self, Add.self, RoleChange.self, Remove.self], defaultSubcommand: List.self)

    struct UserList: Codable { var users: [User] }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users and their roles.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                let list = try await server.client.get("/api/users", as: UserList.self)
                if json { return try Output.json(list) }
                if list.users.isEmpty { return Output.line("no users; add one with `yard users add NAME --role member` (YARD_TOKEN is the admin's)") }
                Table.print(header: ["NAME", "ROLE", "ADDED", "BY"], rows: list.users.map {
                    [$0.name, $0.role.rawValue, Tokens.date($0.createdAt), $0.createdBy.map(Output.printable) ?? "-"]
                })
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user; then give it a token with `yard tokens create --user NAME`.")
        @Argument(help: "User name (letters, digits, _ - .).") var name: String
        @Option(help: "viewer, member or admin.") var role: String
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                try User.validateName(name)
                let role = try Role.parse(role, field: "--role")
                let data = try await server.client.send(.POST, "/api/users", body: try JSONEncoder().encode(["name": name, "role": role.rawValue]))
                let user = try APIClient.decoder.decode(User.self, from: data)
                Output.line("added \(user.name) (\(user.role.rawValue)); `yard tokens create --user \(user.name)` gives it a token")
            }
        }
    }

    struct RoleChange: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "role", abstract: "Change a user's role (from its next request on).")
        @Argument(help: "User name.") var name: String
        @Argument(help: "viewer, member or admin.") var role: String
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                try User.validateName(name)
                let role = try Role.parse(role)
                let data = try await server.client.send(.PATCH, "/api/users/\(name)", body: try JSONEncoder().encode(["role": role.rawValue]))
                let user = try APIClient.decoder.decode(User.self, from: data)
                Output.line("\(user.name) is a \(user.role.rawValue) now")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user; its tokens stop working at once. Its jobs and records keep its name.")
        @Argument(help: "User name.") var name: String
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                try User.validateName(name)
                _ = try await server.client.send(.DELETE, "/api/users/\(name)")
                Output.line("removed \(name); its tokens are revoked")
            }
        }
    }
}

/// `yard tokens`: API tokens of users. A new token is printed once, alone
/// on the last line; the server keeps only a salted hash of it.
struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke users' API tokens (shown once; the server keeps only a hash).",
        subcommands: [List.self, Create.self, Revoke.self], defaultSubcommand: List.self)

    struct TokenList: Codable { var tokens: [TokenSummary] }
    struct Created: Codable {
        var id: String
        var user: String
        var token: String
        var expiresAt: Date?
        enum CodingKeys: String, CodingKey { case id, user, token, expiresAt = "expires_at" }
    }

    static func date(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens: id, user, name, created, expires, revoked (never the token).")
        @Option(help: "Only this user's tokens.") var user: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                if let user { try User.validateName(user, field: "--user") }
                let list = try await server.client.get("/api/tokens" + (user.map { "?user=\($0)" } ?? ""), as: TokenList.self)
                if json { return try Output.json(list) }
                if list.tokens.isEmpty { return Output.line("no tokens; `yard tokens create --user NAME` makes one") }
                let now = Date()
                Table.print(header: ["ID", "USER", "NAME", "CREATED", "EXPIRES", "STATE"], rows: list.tokens.map { token in
                    let state = token.revokedAt.map { "revoked \(date($0))" } ?? (token.expiresAt.map { $0 <= now } == true ? "expired" : "live")
                    return [token.id, token.user, token.label.map(Output.printable) ?? "-", date(token.createdAt),
                            token.expiresAt.map(date) ?? "never", state]
                })
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a token for a user; it is printed once, alone on the last line.")
        @Option(help: "Whose token.") var user: String
        @Option(help: "A label to tell it apart in `yard tokens list`.") var name: String?
        @Option(help: "Lifetime: 12h, 30d, 2w (default: no expiry).") var expires: String?
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                try User.validateName(user, field: "--user")
                if let expires { _ = try APIToken.lifetime(expires, field: "--expires") }
                var body = ["user": user]
                if let name { body["name"] = name }
                if let expires { body["expires"] = expires }
                let data = try await server.client.send(.POST, "/api/tokens", body: try JSONEncoder().encode(body))
                let created = try APIClient.decoder.decode(Created.self, from: data)
                Output.warning("token \(created.id) for \(created.user)\(created.expiresAt.map { ", expires \(date($0))" } ?? ""): shown once, keep it secret (YARD_TOKEN=... for the CLI)")
                Output.line(created.token)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by its id: refused from the next request on.")
        @Argument(help: "Token id (12 hex digits, from `yard tokens list`).") var id: String
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                guard APIToken.isTokenID(id) else {
                    throw YardError.invalid("id", "\"\(id.prefix(40))\" is not a token id; give the 12 hex digits `yard tokens list` shows, not the token")
                }
                let data = try await server.client.send(.DELETE, "/api/tokens/\(id)")
                let token = try APIClient.decoder.decode(TokenSummary.self, from: data)
                Output.line("revoked \(token.id) of \(token.user)")
            }
        }
    }
}

/// `yard audit`: the requests that asked for a change, who asked, from where, and how each ended.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the audit trail: every request that asked for a change (who, what, when, from where, status).")
    @Option(help: "Only this user's requests (`anonymous`: those without valid credentials).") var user: String?
    @Option(help: "How many, the latest.") var limit = 100
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var server: ServerOptions

    struct Page: Codable { var events: [JobEvent] }

    func run() async throws {
        try await reporting {
            if let user { try User.validateName(user, field: "--user") }
            guard (1...10_000).contains(limit) else { throw YardError.invalid("--limit", "must be 1-10000, got \(limit)") }
            let page = try await server.client.get("/api/audit?limit=\(limit)" + (user.map { "&user=\($0)" } ?? ""), as: Page.self)
            if json { return try Output.json(page) }
            if page.events.isEmpty { return Output.line("no requests recorded\(user.map { " for \($0)" } ?? "")") }
            Table.print(header: ["TIME", "USER", "ROLE", "REQUEST", "STATUS", "FROM", "MESSAGE"], rows: page.events.map { event in
                let body = event.payload
                let request = "\(body["method"]?.stringValue ?? "?") \(body["path"]?.stringValue ?? "?")"
                return [Tokens.date(event.time), Output.printable(event.jobID), body["role"]?.stringValue ?? "-", Output.printable(request),
                        body["status"]?.intValue.map(String.init) ?? "?", body["address"]?.stringValue ?? "-",
                        Output.printable(String((body["message"]?.stringValue ?? "").prefix(100)))]
            })
        }
    }
}
