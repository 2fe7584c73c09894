import Hummingbird
import YardDomain

/// When a token is configured, every request needs `Authorization: Bearer
/// TOKEN`, except the routes in `publicRoutes`. The decision is made on the
/// route the router matched (its template, e.g. `/api/jobs/{id}`), never on
/// the raw path, so no spelling of a path can reach a handler unchecked; a
/// request that matched nothing needs the token too (it gets 401, not 404).
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?
    /// Route templates open to everyone (load balancers probe `/health`).
    static var publicRoutes: Set<String> { ["/health"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token else { return try await next(request, context) }
        if let route = context.endpointPath, Self.publicRoutes.contains(route) { return try await next(request, context) }
        guard let given = request.headers[.authorization].flatMap(Self.bearerToken), Self.constantTimeEqual(given, token) else {
            throw YardError(.unauthorized, field: "Authorization",
                            "missing or wrong token; set YARD_TOKEN (the CLI sends it as a Bearer token)")
        }
        return try await next(request, context)
    }

    /// The credentials of a `Bearer` authorization; the scheme is
    /// case-insensitive and may be followed by any run of spaces (RFC 7235).
    static func bearerToken(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let credentials = parts[1].trimmingCharacters(in: .whitespaces)
        return credentials.isEmpty ? nil : credentials
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }
}

/// Refuses request paths that are not in canonical form: empty segments
/// (`//`, a trailing `/`), `.` or `..` segments, backslashes and percent
/// escapes (`%2F`). Routes and ids never need them, and a router that reads
/// such a path one way while something else reads it another is how
/// authorisation gets bypassed.
struct CanonicalPathMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.isCanonical(request.uri.path) else {
            throw YardError(.invalidInput, field: "path",
                            "path: \(request.uri.path.prefix(80)) is not canonical (empty, '.' or '..' segments, '\\' or '%' escapes); use the path as documented, e.g. /api/jobs/ID")
        }
        return try await next(request, context)
    }

    static func isCanonical(_ path: String) -> Bool {
        if path == "/" { return true }
        guard path.hasPrefix("/"), !path.contains("%"), !path.contains("\\") else { return false }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).allSatisfy { segment in
            !segment.isEmpty && segment != "." && segment != ".."
        }
    }
}
