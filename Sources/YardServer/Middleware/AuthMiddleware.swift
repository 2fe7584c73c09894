import Foundation
import HTTPTypes
import Hummingbird
import YardDomain

/// When a token is configured, every request needs `Authorization: Bearer
/// TOKEN` or the session cookie of a signed-in page, except the routes in
/// `publicRoutes`. The decision is made on the route the router matched
/// (its template, e.g. `/api/jobs/{id}`), never on the raw path, so no
/// spelling of a path can reach a handler unchecked; a request that matched
/// nothing needs the token too (it gets 401, not 404). A page asked for
/// without a session is sent to the sign-in page.
///
/// A request that changes something (not GET/HEAD/OPTIONS) and is not
/// authorised by the bearer header is refused when it comes from another
/// site (Origin, Sec-Fetch-Site), with or without a token; one authorised by
/// the session cookie must also carry the session's CSRF token in
/// `X-CSRF-Token`. The bearer header (the CLI, scripts) needs neither.
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?
    var sessions: SessionStore?
    /// Route templates open to everyone (load balancers probe `/health`;
    /// the sign-in page, its files and `/api/session` come before a session).
    static var publicRoutes: Set<String> {
        Set(["/health", "/api/session", WebController<Context>.signInPage]).union(WebController<Context>.assetRoutes)
    }

    static var csrfHeader: HTTPField.Name { HTTPField.Name("X-CSRF-Token")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let bearer = request.headers[.authorization].flatMap(Self.bearerToken)
        if bearer == nil, !BrowserRequest.isSafe(request.method), let reason = BrowserRequest.crossSiteReason(request) {
            throw APIError(status: .forbidden, code: "forbidden", field: "Origin",
                           message: "a change requested from another site is refused (\(reason)); use this server's pages, the CLI or a Bearer token")
        }
        guard let token else { return try await next(request, context) }
        let route = context.endpointPath
        if let bearer {
            guard Self.constantTimeEqual(bearer, token) else { throw Self.unauthorized }
            return try await next(request, context)
        }
        if let sessions, let id = BrowserRequest.cookie(SessionStore.cookieName, in: request), let session = await sessions.session(id) {
            if !BrowserRequest.isSafe(request.method) {
                guard let given = request.headers[Self.csrfHeader], Self.constantTimeEqual(given, session.csrf) else {
                    throw APIError(status: .forbidden, code: "forbidden", field: "X-CSRF-Token",
                                   message: "X-CSRF-Token: missing or wrong; a page sends the csrf of GET /api/session with every change")
                }
            }
            return try await next(request, context)
        }
        if let route, Self.publicRoutes.contains(route) { return try await next(request, context) }
        if let route, request.method == .get, WebController<Context>.pages.contains(route) {
            return Response(status: .seeOther, headers: [.location: WebController<Context>.signInPage + "?next=" + Self.nextParameter(request.uri.path)])
        }
        throw Self.unauthorized
    }

    static var unauthorized: YardError {
        YardError(.unauthorized, field: "Authorization", "missing or wrong token; set YARD_TOKEN (the CLI sends it as a Bearer token)")
    }

    /// A page path as a query value (paths are canonical: letters, digits, `-`, `_`, `/` pass as they are).
    static func nextParameter(_ path: String) -> String {
        path.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_/"))) ?? "/"
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
