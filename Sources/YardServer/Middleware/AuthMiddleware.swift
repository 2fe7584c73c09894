import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization
import YardDomain
import YardJobs

/// When a token is configured, every request needs `Authorization: Bearer
/// TOKEN` or the session cookie of a signed-in page, except the routes in
/// `publicRoutes`. TOKEN is the server's own (`YARD_TOKEN`, the admin's) or
/// a user's (`yard tokens create`), checked against the store at every
/// request, so a revoked token is refused at once. The decision is made on
/// the route the router matched (its template, e.g. `/api/jobs/{id}`),
/// never on the raw path, so no spelling of a path can reach a handler
/// unchecked; a request that matched nothing needs the token too (it gets
/// 401, not 404). A page asked for without a session is sent to the
/// sign-in page. What each route needs of the caller's role is
/// `AccessPolicy`'s; the handler runs with the caller as `Caller.current`.
///
/// A request that changes something (not GET/HEAD/OPTIONS) and is not
/// authorised by the bearer header is refused when it comes from another
/// site (Origin, Sec-Fetch-Site), with or without a token; one authorised by
/// the session cookie must also carry the session's CSRF token in
/// `X-CSRF-Token`. The bearer header (the CLI, scripts) needs neither.
/// Every such request, allowed or not, is an `audit` event: who, what,
/// from where, and its status (a prediction, a POST that changes nothing, is not).
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?
    var sessions: SessionStore?
    /// Users' tokens and the audit trail (nil: the server's token only, no audit).
    var users: UserControl?
    var logger = Logger(label: "yard.audit")

    /// Route templates open to everyone (load balancers probe `/health`;
    /// the sign-in page, its files and `/api/session` come before a session).
    static var publicRoutes: Set<String> {
        Set(["/health", "/ready", "/api/session", WebController<Context>.signInPage]).union(WebController<Context>.assetRoutes)
    }

    static var csrfHeader: HTTPField.Name { HTTPField.Name("X-CSRF-Token")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var caller: Caller?
        guard Self.isAudited(request.method, route: context.endpointPath), let users else {
            return try await serve(request, context: context, next: next, caller: &caller)
        }
        let subject = AuditSubject()
        do {
            let response = try await AuditSubject.$current.withValue(subject) {
                try await serve(request, context: context, next: next, caller: &caller)
            }
            await audit(users, request, context, caller: caller ?? subject.value, status: Int(response.status.code), error: nil)
            return response
        } catch {
            await audit(users, request, context, caller: caller ?? subject.value, status: Self.status(of: error), error: error)
            throw error
        }
    }

    /// Authenticates, authorises and runs the handler; `caller` is who the
    /// request turned out to be, as far as it got.
    private func serve(_ request: Request, context: Context, next: (Request, Context) async throws -> Response,
                       caller: inout Caller?) async throws -> Response {
        let bearer = request.headers[.authorization].flatMap(Self.bearerToken)
        if bearer == nil, !BrowserRequest.isSafe(request.method), let reason = BrowserRequest.crossSiteReason(request) {
            throw APIError(status: .forbidden, code: "forbidden", field: "Origin",
                           message: "a change requested from another site is refused (\(reason)); use this server's pages, the CLI or a Bearer token")
        }
        guard let token else { return try await next(request, context) }
        let route = context.endpointPath
        if let bearer {
            if Self.constantTimeEqual(bearer, token) {
                caller = .tokenAdmin
            } else if let user = try await users?.caller(token: bearer) {
                caller = user
            } else if let reason = try await users?.refusal(token: bearer) {
                throw YardError(.unauthorized, field: "Authorization", reason)
            } else {
                throw Self.unauthorized
            }
        } else if let sessions, let id = BrowserRequest.cookie(SessionStore.cookieName, in: request), let session = try await sessions.session(id) {
            if !BrowserRequest.isSafe(request.method) {
                guard let given = request.headers[Self.csrfHeader], Self.constantTimeEqual(given, session.csrf) else {
                    throw APIError(status: .forbidden, code: "forbidden", field: "X-CSRF-Token",
                                   message: "X-CSRF-Token: missing or wrong; a page sends the csrf of GET /api/session with every change")
                }
            }
            if let tokenID = session.tokenID {
                // Signed in with a user's token: it must still be live (revoked or the user removed: signed out).
                guard let user = try await users?.caller(tokenID: tokenID) else {
                    try await sessions.end(id)
                    return try await anonymous(request, route: route, next: next, context: context)
                }
                caller = user
            } else {
                caller = .tokenAdmin
            }
        } else {
            return try await anonymous(request, route: route, next: next, context: context)
        }
        if let caller, let route, !Self.publicRoutes.contains(route) {
            try await AccessPolicy.authorise(caller, request.method, route: route, id: context.parameters.get("id")) { need, id in
                try await owner(need, id)
            }
        }
        return try await Caller.$current.withValue(caller) { try await next(request, context) }
    }

    /// A request with no credentials: a public route is served, a page is
    /// sent to the sign-in page, anything else is refused.
    private func anonymous(_ request: Request, route: String?, next: (Request, Context) async throws -> Response, context: Context) async throws -> Response {
        if let route, Self.publicRoutes.contains(route) { return try await next(request, context) }
        if let route, request.method == .get, WebController<Context>.pages.contains(route) || route == WebController<Context>.docsPage {
            return Response(status: .seeOther, headers: [.location: WebController<Context>.signInPage + "?next=" + Self.nextParameter(request.uri.path)])
        }
        throw Self.unauthorized
    }

    /// Whether a request is an audit event: one that asks for a change.
    /// A POST that changes nothing (a prediction: serving traffic) is not.
    static func isAudited(_ method: HTTPRequest.Method, route: String?) -> Bool {
        guard !BrowserRequest.isSafe(method) else { return false }
        guard let route else { return true }
        return AccessPolicy.need(method, route: route) != .read
    }

    /// Whose a job or a sweep is: `.some(nil)` when it has no owner, nil when it does not exist.
    private func owner(_ need: AccessPolicy.Need, _ id: String) async throws -> String?? {
        guard let store = users?.store, id.count <= 200 else { return nil }
        if need == .ownSweep { return try await store.sweep(id).map(\.owner) }
        return try await store.job(id).map(\.owner)
    }

    private func audit(_ users: UserControl, _ request: Request, _ context: Context, caller: Caller?, status: Int, error: (any Error)?) async {
        // Only the refusals' own messages (they name the role and the route):
        // a handler's error may quote the input, and the audit holds no input.
        var message: String?
        if status == 401 || status == 403, let error = error as? YardError { message = error.message }
        if status == 401 || status == 403, let error = error as? APIError { message = error.message }
        let entry = UserControl.Request(caller: caller, method: "\(request.method)", route: context.endpointPath, path: request.uri.path,
                                        address: (context as? any ClientAddressContext)?.clientAddress, status: status, message: message)
        do {
            try await users.audit(entry)
        } catch {
            logger.error("audit: could not record \(request.method) \(request.uri.path.prefix(200)) (\(status)): \(error)")
        }
    }

    /// The status an error thrown by the handler or the checks above becomes (ErrorMiddleware maps it).
    static func status(of error: any Error) -> Int {
        switch error {
        case let error as APIError: Int(error.status.code)
        case let error as YardError: Int(APIError(error).status.code)
        case let error as HTTPError: Int(error.status.code)
        default: 500
        }
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

/// Who a request that came without credentials turned out to be, as its
/// handler learned it (a sign-in with a token): the audit names them.
final class AuditSubject: Sendable {
    private let caller = Mutex<Caller?>(nil)
    var value: Caller? { caller.withLock { $0 } }
    func set(_ value: Caller) { caller.withLock { $0 = value } }
    @TaskLocal static var current: AuditSubject?
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
