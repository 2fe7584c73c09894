import Foundation
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import Synchronization
import Testing
import YardDomain
import YardStore
import YardTestSupport
@testable import YardServer

/// Pages sign in with the token for a session cookie; requests made with
/// the cookie that change something need the session's CSRF token and
/// must come from this server's pages; the bearer header needs neither.
@Suite("Browser sessions")
struct BrowserSessionTests {
    static let token = "s3cr3t-token"
    static let host = "127.0.0.1:8787"
    static let csrfName = HTTPField.Name("X-CSRF-Token")!
    static let origin = HTTPField.Name("Origin")!
    static let fetchSite = HTTPField.Name("Sec-Fetch-Site")!
    static let hostName = HTTPField.Name("Host")!

    struct Signed { let cookie: String; let csrf: String; let setCookie: String }

    static func signIn(_ client: any TestClientProtocol, token: String = token) async throws -> (TestResponse, Signed?) {
        let response = try await client.execute(uri: "/api/session", method: .post, headers: [.contentType: "application/json", hostName: host, origin: "http://\(host)"],
                                                body: ByteBuffer(string: #"{"token": "\#(token)"}"#))
        guard response.status == .ok, let setCookie = response.headers[.setCookie],
              let value = setCookie.split(separator: ";").first.map(String.init),
              case .object(let state) = try JSONDecoder().decode(JSONValue.self, from: Data(response.body.readableBytesView)),
              let csrf = state["csrf"]?.stringValue else { return (response, nil) }
        return (response, Signed(cookie: value, csrf: csrf, setCookie: setCookie))
    }

    /// Guessing tokens through the sign-in page: after 10 wrong ones from
    /// an address, it is refused (429, Retry-After) even with the right
    /// token, until the window passes; a success clears the count.
    @Test func theSignInPageStopsAGuesserAfterTenWrongTokens() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        try await t.test { client in
            for attempt in 1...10 {
                let (wrong, _) = try await Self.signIn(client, token: "guess-\(attempt)")
                #expect(wrong.status == .unauthorized, "attempt \(attempt)")
            }
            let (refused, none) = try await Self.signIn(client)
            #expect(refused.status == .tooManyRequests && none == nil)
            let wait = try #require(refused.headers[.retryAfter].flatMap { Int($0) })
            #expect((250...300).contains(wait), "\(wait)")
            let message = String(buffer: refused.body)
            #expect(message.contains("too many wrong tokens from this address; try again in \(wait) s"), "\(message)")
            // The bearer header (the CLI, scripts) is not the page: it still works.
            #expect(try await client.execute(uri: "/api/jobs", method: .get, headers: [.authorization: "Bearer \(Self.token)"]).status == .ok)
        }
    }

    @Test func theLimiterForgetsOldFailuresAndASuccessClearsThem() {
        let limiter = SignInLimiter(limit: 3, window: 60, capacity: 2)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        for i in 0..<3 { limiter.failed("a", now: t0.addingTimeInterval(Double(i))) }
        #expect(limiter.retryAfter("a", now: t0.addingTimeInterval(10)) == 50)
        #expect(limiter.retryAfter("a", now: t0.addingTimeInterval(60.5)) == nil, "the first failure aged out")
        #expect(limiter.retryAfter("b", now: t0) == nil, "another address is not held")
        limiter.failed("b", now: t0)
        limiter.succeeded("b")
        limiter.failed("b", now: t0)
        limiter.failed("b", now: t0)
        #expect(limiter.retryAfter("b", now: t0) == nil, "a success cleared the earlier failure")
        // Past its capacity the limiter forgets the address seen longest ago.
        limiter.failed("c", now: t0.addingTimeInterval(5))
        limiter.failed("d", now: t0.addingTimeInterval(6))
        for i in 0..<3 { limiter.failed("e", now: t0.addingTimeInterval(7 + Double(i))) }
        #expect(limiter.retryAfter("e", now: t0.addingTimeInterval(10)) != nil)
    }

    @Test func pagesNeedASignInThatTradesTheTokenForAnHttpOnlyStrictCookie() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        try await t.test { client in
            let page = try await client.execute(uri: "/jobs/abc-1", method: .get)
            #expect(page.status == .seeOther)
            #expect(page.headers[.location] == "/sign-in?next=/jobs/abc-1")
            #expect(try await client.execute(uri: "/sign-in", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/ui/app.js", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/api/jobs", method: .get).status == .unauthorized)

            let (wrong, none) = try await Self.signIn(client, token: "guess")
            #expect(wrong.status == .unauthorized)
            #expect(wrong.headers[.setCookie] == nil && none == nil)

            let (_, signed) = try await Self.signIn(client)
            let session = try #require(signed)
            #expect(session.setCookie.contains("; HttpOnly"))
            #expect(session.setCookie.contains("; SameSite=Strict"))
            #expect(session.setCookie.contains("; Path=/"))
            #expect(!session.setCookie.contains("Secure"), "Secure only with --secure-cookies")
            #expect(!session.setCookie.contains(Self.token) && session.csrf != Self.token)
            #expect(session.cookie.hasPrefix("yard_session=") && session.cookie.count > 40)

            #expect(try await client.execute(uri: "/jobs", method: .get, headers: [.cookie: session.cookie]).status == .ok)
            #expect(try await client.execute(uri: "/api/jobs", method: .get, headers: [.cookie: session.cookie]).status == .ok)
            let state = try await client.execute(uri: "/api/session", method: .get, headers: [.cookie: session.cookie])
            #expect(String(buffer: state.body).contains(session.csrf))

            // Signing out needs the CSRF token too; then the cookie is worth nothing.
            #expect(try await client.execute(uri: "/api/session", method: .delete, headers: [.cookie: session.cookie]).status == .forbidden)
            let out = try await client.execute(uri: "/api/session", method: .delete, headers: [.cookie: session.cookie, Self.csrfName: session.csrf])
            #expect(out.status == .noContent)
            #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
            #expect(try await client.execute(uri: "/api/jobs", method: .get, headers: [.cookie: session.cookie]).status == .unauthorized)
            #expect(try await client.execute(uri: "/jobs", method: .get, headers: [.cookie: session.cookie]).status == .seeOther)
        }
    }

    @Test func aForgedCrossSiteChangeIsRefusedWithACookie() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        let job = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config()))
        try await t.test { client in
            let session = try #require(try await Self.signIn(client).1)
            let stop = "/api/jobs/\(job.id)/stop"
            // No token, a wrong one, or the right one from another site: refused, the job untouched.
            let forged: [HTTPFields] = [
                [.cookie: session.cookie, Self.hostName: Self.host, Self.origin: "http://\(Self.host)"],
                [.cookie: session.cookie, Self.hostName: Self.host, Self.origin: "http://\(Self.host)", Self.csrfName: "guess"],
                [.cookie: session.cookie, Self.hostName: Self.host, Self.origin: "http://evil.example", Self.csrfName: session.csrf],
                [.cookie: session.cookie, Self.hostName: Self.host, Self.fetchSite: "cross-site", Self.csrfName: session.csrf],
                [.cookie: session.cookie, Self.hostName: Self.host, Self.fetchSite: "same-site", Self.csrfName: session.csrf],
                [.cookie: session.cookie, Self.hostName: Self.host, Self.origin: "null", Self.csrfName: session.csrf],
            ]
            for headers in forged {
                let response = try await client.execute(uri: stop, method: .post, headers: headers)
                #expect(response.status == .forbidden, "\(headers)")
                #expect(String(buffer: response.body).contains("\"field\""))
            }
            #expect(try await t.yard.store.require(job.id).state == .queued)
            // A sign-in from another site is refused as well (login CSRF).
            let login = try await client.execute(uri: "/api/session", method: .post, headers: [Self.hostName: Self.host, Self.origin: "http://evil.example"],
                                                 body: ByteBuffer(string: #"{"token": "\#(Self.token)"}"#))
            #expect(login.status == .forbidden && login.headers[.setCookie] == nil)

            // The page's own request goes through.
            let page = try await client.execute(uri: stop, method: .post, headers: [
                .cookie: session.cookie, Self.hostName: Self.host, Self.origin: "http://\(Self.host)", Self.fetchSite: "same-origin", Self.csrfName: session.csrf])
            #expect(page.status == .ok)
            #expect(try await t.yard.store.require(job.id).state != .queued)
        }
    }

    @Test func theBearerHeaderNeedsNoCSRF() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        let job = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config()))
        try await t.test { client in
            let response = try await client.execute(uri: "/api/jobs/\(job.id)/stop", method: .post, headers: [.authorization: "Bearer \(Self.token)"])
            #expect(response.status == .ok)
            let session = try await client.execute(uri: "/api/session", method: .get)
            #expect(String(buffer: session.body).contains("\"signed_in\":false"))
        }
    }

    /// Without a token the API is open, but a page elsewhere still cannot
    /// make a visitor's browser change anything here.
    @Test func withoutATokenACrossSiteChangeIsRefusedToo() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let job = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config()))
        try await t.test { client in
            let forged = try await client.execute(uri: "/api/jobs/\(job.id)/stop", method: .post,
                                                  headers: [Self.hostName: Self.host, Self.origin: "http://evil.example", Self.fetchSite: "cross-site"])
            #expect(forged.status == .forbidden)
            #expect(try await t.yard.store.require(job.id).state == .queued)
            let state = try await client.execute(uri: "/api/session", method: .get)
            #expect(String(buffer: state.body).contains("\"auth_required\":false"))
            let cli = try await client.execute(uri: "/api/jobs/\(job.id)/stop", method: .post)
            #expect(cli.status == .ok)
        }
    }

    @Test func theCookieIsSecureBehindHTTPS() {
        let plain = SessionController<BasicRequestContext>(token: "t", sessions: SessionStore(), secureCookies: false).cookie("id", maxAge: 60)
        let secure = SessionController<BasicRequestContext>(token: "t", sessions: SessionStore(), secureCookies: true).cookie("id", maxAge: 60)
        #expect(plain == "yard_session=id; Path=/; Max-Age=60; HttpOnly; SameSite=Strict")
        #expect(secure == plain + "; Secure")
    }

    @Test func sessionsExpire() async throws {
        let clock = ManualTime()
        let store = SessionStore(lifetime: 60, now: { clock.now })
        let (id, _) = try await store.create()
        #expect(try await store.session(id) != nil)
        clock.advance(61)
        #expect(try await store.session(id) == nil)
        #expect(try await store.session("made-up") == nil)
    }

    /// What the next start reads: sessions under the SHA-256 of their id,
    /// with their CSRF token, expiry and user token; expired and ended ones
    /// are forgotten.
    @Test func sessionsAreKeptUnderTheHashOfTheirIdForTheNextStart() async throws {
        let clock = ManualTime()
        let records = MemoryJobStore()
        let before = SessionStore(records: records, serverToken: "t", lifetime: 60, now: { clock.now })
        let (admin, adminSession) = try await before.create()
        clock.advance(30)
        let (member, memberSession) = try await before.create(tokenID: "tok-1")
        let kept = await records.sessions(liveAt: clock.now)
        #expect(kept.map(\.key) == [SessionStore.key(admin), SessionStore.key(member)])
        #expect(!kept.contains { $0.key == admin || $0.key == member }, "never the id itself")
        #expect(kept.last == SessionRecord(key: SessionStore.key(member), csrf: memberSession.csrf, expiresAt: memberSession.expires, tokenID: "tok-1"))
        #expect(kept.first?.serverProof == SessionStore.proof(SessionStore.key(admin), token: "t"))
        #expect(kept.last?.serverProof == nil, "a user token's session is checked against its token record instead")

        let after = SessionStore(records: records, serverToken: "t", lifetime: 60, now: { clock.now })
        #expect(try await after.session(admin)?.csrf == adminSession.csrf)
        #expect(try await after.session(member)?.tokenID == "tok-1")
        try await after.end(member)
        clock.advance(31)
        #expect(try await after.session(admin) == nil, "expired")
        #expect(await records.sessions(liveAt: clock.now).isEmpty)
        #expect(try await SessionStore(records: records, now: { clock.now }).session(member) == nil, "ended")
    }

    /// Sign-ins at once, each waiting on the store: every one keeps its
    /// session, and past the capacity the ones that expire first go, in
    /// memory and in the store alike.
    @Test func concurrentSignInsEachKeepTheirSession() async throws {
        let dir = try TemporaryDirectory("yard-sessions")
        defer { dir.remove() }
        let records = SQLiteJobStore(database: try YardDatabase(path: dir.file("yard.sqlite")))
        let store = SessionStore(records: records, serverToken: "t")
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<50 { group.addTask { try await store.create().id } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(ids).count == 50)
        for id in ids { #expect(try await store.session(id) != nil) }

        let clock = ManualTime()
        let small = SessionStore(records: MemoryJobStore(), serverToken: "t", capacity: 5, now: { clock.now })
        let more = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<20 { group.addTask { try await small.create().id } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var live = 0
        for id in more where try await small.session(id) != nil { live += 1 }
        #expect(live == 5)
    }

    /// A server on the embedded store (its data dir for the next ones) and
    /// a session signed in there with the server's token.
    static func signedInOnTheEmbeddedStore() async throws -> (TestYard, Signed) {
        let first = try TestYard(token: token, sqlite: true)
        let signed = Mutex<Signed?>(nil)
        try await first.test { client in
            let session = try await Self.signIn(client).1
            signed.withLock { $0 = session }
        }
        guard let session = signed.withLock({ $0 }) else {
            first.dir.remove()
            throw YardError(.unauthorized, field: "token", "signing in on the first server failed")
        }
        return (first, session)
    }

    /// Rotating a leaked `YARD_TOKEN` signs out what was signed in with it:
    /// a start with another token forgets those sessions.
    @Test func aNewServerTokenSignsOutTheOldOnesSessions() async throws {
        let (first, session) = try await Self.signedInOnTheEmbeddedStore()
        defer { first.dir.remove() }
        let rotated = try TestYard(token: "a-new-token", sqlite: true, directory: first.dir.path)
        try await rotated.test { client in
            let refused = try await client.execute(uri: "/api/jobs", method: .get, headers: [.cookie: session.cookie])
            #expect(refused.status == .unauthorized)
        }
        let back = try TestYard(token: Self.token, sqlite: true, directory: first.dir.path)
        try await back.test { client in
            let forgotten = try await client.execute(uri: "/api/jobs", method: .get, headers: [.cookie: session.cookie])
            #expect(forgotten.status == .unauthorized, "the new token's server forgot it")
        }
    }

    /// On the embedded store: a second server on the same data dir knows the
    /// cookie; nothing in the data dir is the cookie; signing out there ends
    /// it for the next start too.
    @Test func aRestartSignsNoOneOut() async throws {
        let (first, session) = try await Self.signedInOnTheEmbeddedStore()
        defer { first.dir.remove() }
        let id = String(session.cookie.dropFirst("\(SessionStore.cookieName)=".count))
        var files = Data()
        for name in try FileManager.default.contentsOfDirectory(atPath: first.dir.path) where name.hasPrefix("yard.sqlite") {
            files += try Data(contentsOf: URL(fileURLWithPath: first.dir.file(name)))
        }
        #expect(files.range(of: Data(SessionStore.key(id).utf8)) != nil)
        #expect(files.range(of: Data(id.utf8)) == nil, "the data dir holds no cookie")

        let second = try TestYard(token: Self.token, sqlite: true, directory: first.dir.path)
        try await second.test { client in
            let state = try await client.execute(uri: "/api/session", method: .get, headers: [.cookie: session.cookie])
            #expect(String(buffer: state.body).contains("\"signed_in\":true") && String(buffer: state.body).contains(session.csrf))
            #expect(try await client.execute(uri: "/api/jobs", method: .get, headers: [.cookie: session.cookie]).status == .ok)
            let out = try await client.execute(uri: "/api/session", method: .delete,
                                               headers: [.cookie: session.cookie, Self.csrfName: session.csrf, Self.hostName: Self.host, Self.origin: "http://\(Self.host)"])
            #expect(out.status == .noContent)
        }
        let third = try TestYard(token: Self.token, sqlite: true, directory: first.dir.path)
        try await third.test { client in
            let signedOut = try await client.execute(uri: "/api/jobs", method: .get, headers: [.cookie: session.cookie])
            #expect(signedOut.status == .unauthorized)
        }
    }

    @Test func theEventHeadIsTheNewestSequenceNumber() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        #expect(try await t.yard.store.eventHead() == 0)
        var last: Int64 = 0
        for count in 1...37 {
            last = try await t.yard.store.appendEvent(jobID: "j\(count % 3)", type: "state", payload: .object([:])).id
            #expect(try await t.yard.store.eventHead() == last)
        }
        let newest = last
        try await t.test { client in
            let response = try await client.execute(uri: "/api/events/head", method: .get)
            #expect(String(buffer: response.body) == "{\"seq\":\(newest)}")
        }
    }
}

final class ManualTime: @unchecked Sendable {
    private let lock = NSLock()
    private var time = Date(timeIntervalSince1970: 1_700_000_000)
    var now: Date { lock.withLock { time } }
    func advance(_ seconds: TimeInterval) { lock.withLock { time += seconds } }
}
