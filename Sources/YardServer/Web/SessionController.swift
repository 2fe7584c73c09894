import Foundation
import HTTPTypes
import Hummingbird
import YardDomain
import YardJobs

/// `/api/session`: a page trades a token (the server's, or a user's made by
/// `yard tokens create`) for a session cookie
/// (POST), reads whether it is signed in and its CSRF token (GET), and
/// signs out (DELETE). The cookie is HttpOnly and SameSite=Strict, Secure
/// when the server is reached over HTTPS (`secureCookies`); it holds a
/// random session id, never the token.
struct SessionController<Context: RequestContext> {
    let token: String?
    let sessions: SessionStore
    let secureCookies: Bool
    /// Checks users' tokens (nil: only the server's token signs in).
    var users: UserControl?
    /// Wrong tokens per address: guessing through this page is slowed to a stop.
    var limiter = SignInLimiter()

    func addRoutes(to router: some RouterMethods<Context>) {
        router.get("/api/session", use: show)
        router.post("/api/session", use: signIn)
        router.delete("/api/session", use: signOut)
    }

    struct State: Encodable {
        /// Whether the server needs a token (else every page is open).
        let authRequired: Bool
        let signedIn: Bool
        /// Sent back as `X-CSRF-Token` with every request that changes something.
        let csrf: String?
        /// Who is signed in and their role (a page offers no change a viewer may not make).
        var user: String?
        var role: String?

        enum CodingKeys: String, CodingKey { case authRequired = "auth_required", signedIn = "signed_in", csrf, user, role }
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        guard token != nil else { return try JSONResponse.make(State(authRequired: false, signedIn: true, csrf: nil)) }
        guard let session = try await current(request) else {
            return try JSONResponse.make(State(authRequired: true, signedIn: false, csrf: nil))
        }
        guard let caller = try await caller(of: session) else {
            return try JSONResponse.make(State(authRequired: true, signedIn: false, csrf: nil))
        }
        return try JSONResponse.make(State(authRequired: true, signedIn: true, csrf: session.csrf, user: caller.name, role: caller.role.rawValue))
    }

    @Sendable func signIn(_ request: Request, context: Context) async throws -> Response {
        if let reason = BrowserRequest.crossSiteReason(request) {
            throw APIError(status: .forbidden, code: "forbidden", field: "Origin", message: "sign-in from another site refused (\(reason)); sign in on this server's own page")
        }
        guard let token else {
            throw YardError(.conflict, field: "token", "this server has no token (YARD_TOKEN is not set); its pages need no sign-in")
        }
        let address = (context as? YardRequestContext)?.clientAddress ?? "unknown"
        if let wait = limiter.retryAfter(address) {
            throw APIError(status: .tooManyRequests, code: "rate_limited", field: "token",
                           message: "token: too many wrong tokens from this address; try again in \(wait) s",
                           headers: [.retryAfter: String(wait)])
        }
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: 4096) } catch {
            throw YardError(.invalidInput, field: "body", "body: larger than 4 KiB; send {\"token\": \"...\"}")
        }
        guard let given = try? JSONDecoder().decode(SignInBody.self, from: Data(body.readableBytesView)).token else {
            throw YardError(.invalidInput, field: "token", "token: send JSON {\"token\": \"...\"} with the server's YARD_TOKEN or your own token")
        }
        let caller: Caller
        if AuthMiddleware<Context>.constantTimeEqual(given, token) {
            caller = .tokenAdmin
        } else if let user = try await users?.caller(token: given) {
            caller = user
        } else {
            limiter.failed(address)
            throw YardError(.unauthorized, field: "token", "token: wrong, revoked or expired token; use the YARD_TOKEN the server was started with or a token from `yard tokens create`")
        }
        limiter.succeeded(address)
        AuditSubject.current?.set(caller)
        let (id, session) = try await sessions.create(tokenID: caller.tokenID)
        var headers: HTTPFields = [.setCookie: cookie(id, maxAge: Int(sessions.lifetime))]
        headers[.contentType] = "application/json"
        let state = try JSONResponse.encoder.encode(State(authRequired: true, signedIn: true, csrf: session.csrf, user: caller.name, role: caller.role.rawValue))
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: state)))
    }

    /// Needs the session's CSRF token like every other change (AuthMiddleware checks it).
    @Sendable func signOut(_ request: Request, context: Context) async throws -> Response {
        if let id = BrowserRequest.cookie(SessionStore.cookieName, in: request) { try await sessions.end(id) }
        return Response(status: .noContent, headers: [.setCookie: cookie("", maxAge: 0)])
    }

    /// Who a session stands for now (nil: its user token was revoked or its user removed).
    func caller(of session: SessionStore.Session) async throws -> Caller? {
        guard let tokenID = session.tokenID else { return .tokenAdmin }
        return try await users?.caller(tokenID: tokenID)
    }

    func current(_ request: Request) async throws -> SessionStore.Session? {
        guard let id = BrowserRequest.cookie(SessionStore.cookieName, in: request) else { return nil }
        return try await sessions.session(id)
    }

    func cookie(_ value: String, maxAge: Int) -> String {
        "\(SessionStore.cookieName)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secureCookies ? "; Secure" : "")
    }
}

/// What the sign-in page posts.
private struct SignInBody: Decodable { let token: String }
