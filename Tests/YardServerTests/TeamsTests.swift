import Foundation
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import Testing
import YardDomain
import YardJobs
import YardQueue
import YardStore
import YardTestSupport
@testable import YardServer

/// Issue 32: users with roles and their own tokens, the audit trail.
@Suite("Teams: users, tokens, roles, audit")
struct TeamsTests {
    static let token = "s3cr3t-token"

    /// A client of a live server with one token.
    struct As {
        let port: Int
        let token: String

        func send(_ method: String, _ target: String, _ body: String = "", type: String = "application/json") async throws -> RawHTTP.Reply {
            try await RawHTTP.send(port: port, method: method, target: target,
                                   headers: ["Authorization": "Bearer \(token)", "Content-Type": type], body: body)
        }

        func json(_ method: String, _ target: String, _ body: String = "") async throws -> JSONValue {
            let reply = try await send(method, target, body)
            guard (200..<300).contains(reply.status) else { throw RawHTTP.Failure(description: "\(method) \(target): \(reply.status) \(reply.body)") }
            return try JSONDecoder().decode(JSONValue.self, from: Data(reply.body.utf8))
        }
    }

    /// Adds a user with a role and returns a token of theirs.
    static func user(_ admin: As, _ name: String, _ role: Role) async throws -> String {
        _ = try await admin.json("POST", "/api/users", #"{"name": "\#(name)", "role": "\#(role.rawValue)"}"#)
        let created = try await admin.json("POST", "/api/tokens", #"{"user": "\#(name)", "name": "test"}"#)
        return try #require(created["token"]?.stringValue)
    }

    /// The headline: a viewer is refused a change (403 naming its role), a
    /// member cannot stop another's job, an admin can; the audit lists the
    /// three attempts, who made them, from where and how each ended, and
    /// holds no token and no body.
    @Test func aViewerAMemberAndAnAdminOverHTTP() async throws {
        let t = try TestYard(token: Self.token, sqlite: true)
        defer { t.dir.remove() }
        try await t.live { port in
            let root = As(port: port, token: Self.token)
            let vera = As(port: port, token: try await Self.user(root, "vera", .viewer))
            let mia = As(port: port, token: try await Self.user(root, "mia", .member))
            let ada = As(port: port, token: try await Self.user(root, "ada", .admin))
            let secret = "minio-secret-value-42"
            let config = { (id: String) in t.config("task_id: \(id)\nminio: {MINIO_ENDPOINT: 'http://127.0.0.1:1', MINIO_ID: a, MINIO_SECRET_KEY: \(secret), MINIO_BUCKET: b}") }

            let refused = try await vera.send("POST", "/api/jobs", config("jv"), type: "application/yaml")
            #expect(refused.status == 403, "\(refused.body)")
            #expect(refused.body.contains("vera is a viewer") && refused.body.contains("needs a member"), "\(refused.body)")
            #expect(try await vera.send("GET", "/api/jobs").status == 200, "a viewer reads")

            #expect(try await mia.send("POST", "/api/jobs", config("jm"), type: "application/yaml").status == 201)
            #expect(try await ada.send("POST", "/api/jobs", config("ja"), type: "application/yaml").status == 201)
            #expect(try await mia.json("GET", "/api/jobs/jm")["owner"] == "mia")
            #expect(try await root.json("GET", "/api/jobs/ja")["owner"] == "ada")
            #expect(try await mia.json("GET", "/api/jobs?mine=true")["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["jm"])
            #expect(try await vera.json("GET", "/api/jobs?owner=ada")["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["ja"])

            let notHers = try await mia.send("POST", "/api/jobs/ja/stop")
            #expect(notHers.status == 403 && notHers.body.contains("only its own job") && notHers.body.contains("ada's"), "\(notHers.body)")
            #expect(try await root.json("GET", "/api/jobs/ja")["state"] == "queued", "the refused stop changed nothing")
            let byAdmin = try await ada.send("POST", "/api/jobs/jm/stop")
            #expect(byAdmin.status == 200, "\(byAdmin.body)")
            #expect(try await root.json("GET", "/api/jobs/jm")["state"] == "stopped")

            let audit = try await vera.send("GET", "/api/audit?limit=1000")
            #expect(audit.status == 200)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let events = try decoder.decode([String: [JobEvent]].self, from: Data(audit.body.utf8))["events"] ?? []
            let lines = events.filter { ["vera", "mia", "ada"].contains($0.jobID) }.map {
                "\($0.jobID) \($0.payload["role"]?.stringValue ?? "?") \($0.payload["method"]?.stringValue ?? "?") \($0.payload["route"]?.stringValue ?? "?") \($0.payload["status"]?.intValue ?? 0)"
            }
            #expect(lines == [
                "vera viewer POST /api/jobs 403",
                "mia member POST /api/jobs 201",
                "ada admin POST /api/jobs 201",
                "mia member POST /api/jobs/{id}/stop 403",
                "ada admin POST /api/jobs/{id}/stop 200",
            ])
            #expect(events.allSatisfy { $0.entity == .audit && $0.payload["address"] == "127.0.0.1" })
            #expect(events.first { $0.jobID == "vera" }?.payload["message"]?.stringValue?.contains("viewer") == true)
            // The admin's own setup is there too, as the YARD_TOKEN's user.
            #expect(events.filter { $0.jobID == "admin" && $0.payload["route"] == "/api/tokens" }.count == 3)
            for leaked in [Self.token, secret, vera.token, mia.token, ada.token] { #expect(!audit.body.contains(leaked)) }
            let mine = try await RawHTTP.send(port: port, method: "GET", target: "/api/audit?user=mia", headers: ["Authorization": "Bearer \(Self.token)"])
            #expect(mine.body.components(separatedBy: "\"job_id\":\"mia\"").count == 3 && !mine.body.contains("\"job_id\":\"ada\""))
        }
    }

    /// A revoked token, a removed user's token and a token past its expiry
    /// are refused at the next request; a role change holds at once.
    @Test func revocationRemovalAndRoleChangesHoldAtOnce() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        try await t.live { port in
            let root = As(port: port, token: Self.token)
            let first = As(port: port, token: try await Self.user(root, "ivan", .viewer))
            let second = try await root.json("POST", "/api/tokens", #"{"user": "ivan"}"#)
            let other = As(port: port, token: try #require(second["token"]?.stringValue))
            #expect(try await first.send("GET", "/api/jobs").status == 200)
            #expect(try await first.send("POST", "/api/jobs", t.config(), type: "application/yaml").status == 403)
            _ = try await root.json("PATCH", "/api/users/ivan", #"{"role": "member"}"#)
            #expect(try await first.send("POST", "/api/jobs", t.config(), type: "application/yaml").status == 201, "member from the next request")

            let id = try #require(try await root.json("GET", "/api/tokens?user=ivan")["tokens"]?.arrayValue?.first?["id"]?.stringValue)
            #expect(try await root.json("DELETE", "/api/tokens/\(id)")["revoked_at"] != nil)
            let revoked = try await first.send("GET", "/api/jobs")
            #expect(revoked.status == 401 && revoked.body.contains("token \(id) was revoked"), "revoked: refused at once, saying why: \(revoked.body)")
            #expect(try await other.send("GET", "/api/jobs").status == 200, "the user's other token still works")
            #expect(try await root.send("DELETE", "/api/users/ivan").status == 204)
            let removed = try await other.send("GET", "/api/jobs")
            #expect(removed.status == 401 && removed.body.contains("was revoked"), "a removed user's tokens stop: \(removed.body)")
            #expect(try await root.send("DELETE", "/api/tokens/\(id)").status == 200, "revoking again changes nothing")
            #expect(try await root.send("DELETE", "/api/tokens/nothex").status == 404)

            _ = try await root.json("POST", "/api/users", #"{"name": "olga", "role": "viewer"}"#)
            let short = try await root.json("POST", "/api/tokens", #"{"user": "olga", "expires": "1h"}"#)
            #expect(short["expires_at"] != nil)
            for (body, field) in [(#"{"user": "olga", "expires": "forever"}"#, "expires"), (#"{"user": "nobody"}"#, "user"),
                                  (#"{"name": "x"}"#, "user"), (#"{"user": "olga", "name": "a\nb"}"#, "name")] {
                let reply = try await root.send("POST", "/api/tokens", body)
                #expect([400, 404].contains(reply.status) && reply.body.contains("\"field\":\"\(field)\""), "\(body): \(reply.body)")
            }
            for body in [#"{"name": "admin", "role": "member"}"#, #"{"name": "OLGA", "role": "member"}"#] {
                #expect(try await root.send("POST", "/api/users", body).status == 409, "\(body)")
            }
            for body in [#"{"name": "../x", "role": "member"}"#, #"{"name": "eve", "role": "root"}"#, #"{"name": 3, "role": "member"}"#, "not json"] {
                #expect(try await root.send("POST", "/api/users", body).status == 400, "\(body)")
            }
            // A guessed token, or a live token's id with another secret, learns nothing.
            for guess in ["yt_000000000000_" + String(repeating: "A", count: 43), "yt_\(id)_" + String(repeating: "A", count: 43)] {
                let reply = try await As(port: port, token: guess).send("GET", "/api/jobs")
                #expect(reply.status == 401 && reply.body.contains("missing or wrong token") && !reply.body.contains(id), "\(reply.body)")
            }
        }
    }

    /// A token made for a user is nowhere in the data dir: not in the
    /// database, its WAL, nor any other file (only a salted hash is kept).
    @Test func tokensAreNotRecoverableFromTheDataDir() async throws {
        let t = try TestYard(token: Self.token, sqlite: true)
        defer { t.dir.remove() }
        try await t.live { port in
            let root = As(port: port, token: Self.token)
            let token = try await Self.user(root, "nina", .member)
            #expect(try await As(port: port, token: token).send("GET", "/api/jobs").status == 200)
            let secret = String(token.dropFirst("yt_".count + 12 + 1))
            #expect(secret.count == 43)
            var files = 0
            for case let relative as String in FileManager.default.enumerator(atPath: t.dir.path)! {
                guard let data = FileManager.default.contents(atPath: t.dir.file(relative)) else { continue }
                files += 1
                for needle in [token, secret] { #expect(data.range(of: Data(needle.utf8)) == nil, "\(relative) holds the token") }
            }
            #expect(files >= 2 && FileManager.default.fileExists(atPath: t.dir.file("yard.sqlite")))
            let listed = try await root.send("GET", "/api/tokens")
            #expect(!listed.body.contains(secret) && !listed.body.contains("\"hash\"") && !listed.body.contains("\"salt\""))
        }
    }

    /// Every route that changes something has a rule, and a viewer is
    /// refused each (403 naming its role) but those a viewer may use; a
    /// member is refused each admin one. The routes come from the router itself.
    @Test func everyChangingRouteIsRoleChecked() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        let routes = t.yard.buildRouter().routes.map { (method: "\($0.method)", path: "\($0.path)") }
            .filter { !["GET", "HEAD"].contains($0.method) && !AuthMiddleware<YardRequestContext>.publicRoutes.contains($0.path) }
        #expect(routes.count >= 18)
        for route in routes { #expect(AccessPolicy.rules["\(route.method) \(route.path)"] != nil, "\(route.method) \(route.path) has no rule in AccessPolicy") }
        try await t.test { client in
            func token(_ name: String, _ role: Role) async throws -> String {
                let auth: HTTPFields = [.authorization: "Bearer \(Self.token)", .contentType: "application/json"]
                _ = try await client.execute(uri: "/api/users", method: .post, headers: auth, body: ByteBuffer(string: #"{"name": "\#(name)", "role": "\#(role.rawValue)"}"#))
                let made = try await client.execute(uri: "/api/tokens", method: .post, headers: auth, body: ByteBuffer(string: #"{"user": "\#(name)"}"#))
                return try #require(made.json["token"]?.stringValue)
            }
            let viewer = try await token("vic", .viewer), member = try await token("meg", .member)
            for route in routes {
                let uri = route.path.replacingOccurrences(of: #"\{[a-z]+\}"#, with: "x1", options: .regularExpression)
                let method = HTTPRequest.Method(route.method)!
                let need = AccessPolicy.need(method, route: route.path)
                let asViewer = try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer \(viewer)", .contentType: "application/json"],
                                                        body: ByteBuffer(string: "{}"))
                if need == .read {
                    #expect(asViewer.status != .forbidden, "\(route.method) \(route.path) is open to viewers")
                } else {
                    #expect(asViewer.status == .forbidden && asViewer.text.contains("vic is a viewer"), "\(route.method) \(route.path): \(asViewer.status) \(asViewer.text)")
                }
                let asMember = try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer \(member)", .contentType: "application/json"],
                                                        body: ByteBuffer(string: "{}"))
                #expect((asMember.status == .forbidden) == (need == .admin), "\(route.method) \(route.path) as a member: \(asMember.status)")
            }
        }
    }

    /// The dashboard's form signs in with a user's token too; the session
    /// says who and with which role (a viewer's page offers no changes), its
    /// changes are role-checked, and a revoked token signs the page out.
    @Test func aUserTokenSignsInOnTheSameForm() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        try await t.test { client in
            let auth: HTTPFields = [.authorization: "Bearer \(Self.token)", .contentType: "application/json"]
            _ = try await client.execute(uri: "/api/users", method: .post, headers: auth, body: ByteBuffer(string: #"{"name": "vic", "role": "viewer"}"#))
            let made = try await client.execute(uri: "/api/tokens", method: .post, headers: auth, body: ByteBuffer(string: #"{"user": "vic"}"#))
            let viewer = try #require(made.json["token"]?.stringValue), id = try #require(made.json["id"]?.stringValue)

            let (_, admin) = try await BrowserSessionTests.signIn(client)
            let adminState = try await client.execute(uri: "/api/session", method: .get, headers: [.cookie: try #require(admin).cookie])
            #expect(adminState.json["user"] == "admin" && adminState.json["role"] == "admin")

            let (_, signed) = try await BrowserSessionTests.signIn(client, token: viewer)
            let session = try #require(signed)
            let state = try await client.execute(uri: "/api/session", method: .get, headers: [.cookie: session.cookie])
            #expect(state.json["signed_in"] == true && state.json["user"] == "vic" && state.json["role"] == "viewer")
            #expect(try await client.execute(uri: "/jobs", method: .get, headers: [.cookie: session.cookie]).status == .ok)
            let change = try await client.execute(uri: "/api/jobs", method: .post, headers: [
                .cookie: session.cookie, BrowserSessionTests.csrfName: session.csrf, BrowserSessionTests.hostName: BrowserSessionTests.host,
                BrowserSessionTests.origin: "http://\(BrowserSessionTests.host)", .contentType: "application/yaml"], body: ByteBuffer(string: t.config()))
            #expect(change.status == .forbidden && change.text.contains("viewer"))

            _ = try await client.execute(uri: "/api/tokens/\(id)", method: .delete, headers: auth)
            #expect(try await client.execute(uri: "/api/jobs", method: .get, headers: [.cookie: session.cookie]).status == .unauthorized)
            let after = try await client.execute(uri: "/api/session", method: .get, headers: [.cookie: session.cookie])
            #expect(after.json["signed_in"] == false)
            let (again, none) = try await BrowserSessionTests.signIn(client, token: viewer)
            #expect(again.status == .unauthorized && none == nil)
            // The audit names who signed in (and a refused sign-in as anonymous), never the token.
            let audit = try await client.execute(uri: "/api/audit", method: .get, headers: auth)
            let signIns = (audit.json["events"]?.arrayValue ?? []).filter { $0["payload"]?["route"] == "/api/session" }
            #expect(signIns.map { "\($0["job_id"]?.stringValue ?? "?") \($0["payload"]?["status"]?.intValue ?? 0)" } == ["admin 200", "vic 200", "anonymous 401"])
            #expect(!audit.text.contains(viewer) && !audit.text.contains(Self.token))
        }
    }

    /// Requests without valid credentials that ask for a change are in the
    /// audit as `anonymous`, with their status; reads are not audited.
    @Test func refusedAndAnonymousChangesAreAudited() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        try await t.test { client in
            _ = try await client.execute(uri: "/api/jobs/j1/stop", method: .post, headers: [.authorization: "Bearer guess-1234xyz"])
            _ = try await client.execute(uri: "/api/jobs", method: .get, headers: [.authorization: "Bearer \(Self.token)"])
            // A prediction changes nothing: serving traffic is not audited.
            let predict = try await client.execute(uri: "/api/predict/nothing", method: .post, headers: [.authorization: "Bearer \(Self.token)"])
            #expect(predict.status != .ok)
            // A handler's error may quote the input (here an unknown key): the audit keeps its status, not its message.
            let bad = try await client.execute(uri: "/api/jobs", method: .post, headers: [.authorization: "Bearer \(Self.token)", .contentType: "application/yaml"],
                                               body: ByteBuffer(string: t.config("hunter2-in-a-key: 1\n")))
            #expect(bad.status == .badRequest && bad.text.contains("hunter2-in-a-key"))
            let audit = try await client.execute(uri: "/api/audit", method: .get, headers: [.authorization: "Bearer \(Self.token)"])
            let events = audit.json["events"]?.arrayValue ?? []
            #expect(events.count == 2)
            #expect(events.last?["job_id"] == "admin" && events.last?["payload"]?["status"] == 400 && events.last?["payload"]?["message"] == nil)
            #expect(!audit.text.contains("hunter2"))
            #expect(events.first?["job_id"] == "anonymous" && events.first?["payload"]?["status"] == 401 && events.first?["payload"]?["route"] == "/api/jobs/{id}/stop")
            #expect(!audit.text.contains("guess-1234xyz"))
        }
    }

    /// Records say who made them: a dataset version added over HTTP by a
    /// member; a sweep, a model version and an alias move made by the job
    /// layer for the request's caller; nothing when there is no caller.
    @Test func recordsSayWhoMadeThem() async throws {
        let t = try TestYard(token: Self.token, datasetRoots: [FileManager.default.temporaryDirectory.path])
        defer { t.dir.remove() }
        let source = try TestImages.yoloDataset(in: t.dir)
        try await t.test { client in
            let auth: HTTPFields = [.authorization: "Bearer \(Self.token)", .contentType: "application/json"]
            _ = try await client.execute(uri: "/api/users", method: .post, headers: auth, body: ByteBuffer(string: #"{"name": "mia", "role": "member"}"#))
            let made = try await client.execute(uri: "/api/tokens", method: .post, headers: auth, body: ByteBuffer(string: #"{"user": "mia"}"#))
            let mia = try #require(made.json["token"]?.stringValue)
            let (status, lines) = try await DatasetsAPITests.add(client, DatasetsAPITests.body("shapes", source), token: mia)
            #expect(status == 200 && lines.last?["added"]?["version"]?["created_by"] == "mia", "\(lines)")
            #expect(try await t.yard.store.datasetVersions(name: "shapes").first?.createdBy == "mia")
            // Another member may not add versions to mia's dataset; an admin may.
            _ = try await client.execute(uri: "/api/users", method: .post, headers: auth, body: ByteBuffer(string: #"{"name": "max", "role": "member"}"#))
            let other = try await client.execute(uri: "/api/tokens", method: .post, headers: auth, body: ByteBuffer(string: #"{"user": "max"}"#))
            let max = try #require(other.json["token"]?.stringValue)
            let refused = try await DatasetsAPITests.add(client, DatasetsAPITests.body("shapes", source), token: max)
            #expect(refused.status == 403 && refused.lines.first?["message"]?.stringValue?.contains("mia's") == true, "\(refused.lines)")
            #expect(try await DatasetsAPITests.add(client, DatasetsAPITests.body("boxes", source), token: max).status == 200, "a new name is anyone's")
            #expect(try await DatasetsAPITests.add(client, DatasetsAPITests.body("shapes", source), token: Self.token).status == 200)
        }
        let store = t.yard.store
        let mia = Caller(name: "mia", role: .member)
        try await Caller.$current.withValue(mia) {
            try await SweepControl(store: store).create(Sweep(id: "s1", study: "s1", experiment: "e", config: .object([:]), createdAt: Date()), secrets: [:])
            let (version, _) = try await RegistryControl(store: store).register(ModelVersion(name: "det", version: "", jobID: "j1", runID: "", source: "x", createdAt: Date()))
            #expect(version.createdBy == "mia")
            await #expect(throws: YardError.self, "a member moves no alias") {
                try await RegistryControl(store: store).moveAlias(name: "det", alias: "production", to: "1", reason: "alias", at: Date())
            }
        }
        try await Caller.$current.withValue(Caller(name: "ada", role: .admin)) {
            try await RegistryControl(store: store).moveAlias(name: "det", alias: "production", to: "1", reason: "alias", at: Date())
        }
        try await SweepControl(store: store).create(Sweep(id: "s2", study: "s2", experiment: "e", config: .object([:]), createdAt: Date()), secrets: [:])
        #expect(try await store.sweep("s1")?.owner == "mia")
        #expect(try await store.sweep("s2")?.owner == nil, "no request, no caller: nobody is made up")
        #expect(try await store.aliasHistory(name: "det", alias: "production", limit: 10).map(\.by) == ["ada"])
        let job = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: trial-1")), owner: "sweep-owner")
        #expect(job.owner == "sweep-owner", "a sweep's trials are submitted for its owner")
    }

    /// A member registers a version (it says so) but cannot move an alias by
    /// asking for one with the registration: refused before a version is made.
    @Test func aMemberRegistersButMovesNoAlias() async throws {
        let t = try TestYard(token: Self.token, sqlite: true)
        defer { t.dir.remove() }
        try await ModelsAPITests.succeededJob(t, "job-a", weights: "weights of a")
        try await t.test { client in
            let auth: HTTPFields = [.authorization: "Bearer \(Self.token)", .contentType: "application/json"]
            _ = try await client.execute(uri: "/api/users", method: .post, headers: auth, body: ByteBuffer(string: #"{"name": "mia", "role": "member"}"#))
            let made = try await client.execute(uri: "/api/tokens", method: .post, headers: auth, body: ByteBuffer(string: #"{"user": "mia"}"#))
            let mia: HTTPFields = [.authorization: "Bearer \(try #require(made.json["token"]?.stringValue))", .contentType: "application/json"]
            let (refused, error) = try await ModelsAPITests.json(client, "/api/models", .post, #"{"job_id": "job-a", "name": "det", "alias": "production"}"#, headers: mia)
            #expect(refused == 403 && error["message"]?.stringValue?.contains("needs an admin") == true, "\(error)")
            // Nor by a job that would move one when it succeeds.
            for extra in ["deploy: {model: det, alias: production, metric: metrics/mAP50-95(B)}\n", "mlflow: {register_model: det, register_alias: production}\n"] {
                let submitted = try await client.execute(uri: "/api/jobs", method: .post, headers: [.authorization: mia[.authorization] ?? "", .contentType: "application/yaml"],
                                                         body: ByteBuffer(string: t.config(extra)))
                #expect(submitted.status == .forbidden && submitted.text.contains("needs an admin"), "\(extra): \(submitted.text)")
            }
            #expect(try await t.yard.store.jobs(limit: 10, state: nil, owner: "mia").isEmpty)
            #expect(try await t.yard.store.modelVersions(name: "det").isEmpty, "no version was made for the refused alias")
            let (status, version) = try await ModelsAPITests.json(client, "/api/models", .post, #"{"job_id": "job-a", "name": "det"}"#, headers: mia)
            #expect(status == 201 && version["created_by"] == "mia", "\(version)")
            let (moved, change) = try await ModelsAPITests.json(client, "/api/models/det/aliases", .post, #"{"alias": "champion", "version": "1"}"#, headers: auth)
            #expect(moved == 200 && change["by"] == "admin", "\(change)")
            #expect(try await t.yard.store.aliasHistory(name: "det", alias: nil, limit: 1).first?.by == "admin")
        }
    }

    /// A member may ask for priority up to 7, an admin up to 9; above, a
    /// one-line 403 names the field and the limit, and no job is made. The
    /// job's priority is in the API's record.
    @Test func priorityIsLimitedByRole() async throws {
        let t = try TestYard(token: Self.token, sqlite: true)
        defer { t.dir.remove() }
        try await t.test { client in
            let auth: HTTPFields = [.authorization: "Bearer \(Self.token)", .contentType: "application/json"]
            _ = try await client.execute(uri: "/api/users", method: .post, headers: auth, body: ByteBuffer(string: #"{"name": "mia", "role": "member"}"#))
            let made = try await client.execute(uri: "/api/tokens", method: .post, headers: auth, body: ByteBuffer(string: #"{"user": "mia"}"#))
            let mia = "Bearer \(try #require(made.json["token"]?.stringValue))"
            func submit(_ bearer: String, _ extra: String) async throws -> (HTTPResponse.Status, String) {
                let response = try await client.execute(uri: "/api/jobs", method: .post, headers: [.authorization: bearer, .contentType: "application/yaml"],
                                                        body: ByteBuffer(string: t.config(extra)))
                return (response.status, response.text)
            }
            let (refused, text) = try await submit(mia, "priority: 8\n")
            #expect(refused == .forbidden && text.contains("priority 8 is above a member's limit of 7"), "\(text)")
            #expect(try await t.yard.store.jobs(limit: 10, state: nil, owner: "mia").isEmpty)
            let (accepted, job) = try await submit(mia, "priority: 7\n")
            #expect(accepted == .created || accepted == .ok, "\(job)")
            #expect(try await t.yard.store.jobs(limit: 10, state: nil, owner: "mia").map(\.priority) == [7])
            let (admin, urgent) = try await submit("Bearer \(Self.token)", "priority: 9\n")
            #expect(admin == .created || admin == .ok, "\(urgent)")
            let id = try #require(try await t.yard.store.jobs(limit: 10, state: nil, owner: "admin").first?.id, "\(urgent)")
            let shown = try await client.execute(uri: "/api/jobs/\(id)", method: .get, headers: [.authorization: "Bearer \(Self.token)"])
            #expect(shown.json["priority"]?.intValue == 9, "\(shown.text)")
            let (bad, message) = try await submit("Bearer \(Self.token)", "priority: 12\n")
            #expect(bad == .badRequest && message.contains("priority") && message.contains("0 (lowest) to 9"), "\(message)")
        }
    }

    /// A job held back by its user's running limit says so in the API.
    @Test func aJobOverTheRunningLimitSaysWhyItWaits() async throws {
        let t = try TestYard(token: Self.token, queue: MemoryJobQueue(policy: SchedulingPolicy(maxRunningPerUser: 1)))
        defer { t.dir.remove() }
        try await t.test { client in
            let auth: HTTPFields = [.authorization: "Bearer \(Self.token)", .contentType: "application/yaml"]
            for id in ["first", "second"] {
                let submitted = try await client.execute(uri: "/api/jobs", method: .post, headers: auth, body: ByteBuffer(string: t.config("task_id: \(id)\n")))
                #expect(submitted.status == .created || submitted.status == .ok, "\(submitted.text)")
            }
            #expect(try await t.yard.queue.claim(worker: "w")?.jobID == "first")
            let shown = try await client.execute(uri: "/api/jobs/second", method: .get, headers: auth)
            #expect(shown.json["waiting"]?.stringValue == "waiting: admin has 1 running job (at most 1 per user)", "\(shown.text)")
            #expect(try await client.execute(uri: "/api/jobs/first", method: .get, headers: auth).json["waiting"] == nil)
        }
    }

    /// A job no live worker can take says why in the API's `waiting`; a bad
    /// `resources:` is refused in one line naming the field.
    @Test func aJobNoWorkerCanTakeSaysWhyInTheAPI() async throws {
        let registry = MemoryWorkerRegistry()
        let t = try TestYard(token: Self.token, queue: MemoryJobQueue(workers: registry))
        defer { t.dir.remove() }
        try await t.test { client in
            let auth: HTTPFields = [.authorization: "Bearer \(Self.token)", .contentType: "application/yaml"]
            let body = t.config("task_id: routed\nresources: {tags: [a100], gpu_memory_gb: 40}\n")
            let submitted = try await client.execute(uri: "/api/jobs", method: .post, headers: auth, body: ByteBuffer(string: body))
            #expect(submitted.status == .created || submitted.status == .ok, "\(submitted.text)")
            var shown = try await client.execute(uri: "/api/jobs/routed", method: .get, headers: auth)
            #expect(shown.json["waiting"]?.stringValue == "waiting: no worker has tags a100", "\(shown.text)")
            var info = WorkerInfo(id: "w1", host: "h", pid: 1, device: "cuda:0", startedAt: Date())
            info.tags = ["a100"]
            info.expiresAt = Date().addingTimeInterval(60)
            info.gpus = [GPUStats(index: 0, name: "A100", memoryTotalMiB: 40_960, memoryUsedMiB: 10_000)]
            try await registry.announce(info)
            shown = try await client.execute(uri: "/api/jobs/routed", method: .get, headers: auth)
            #expect(shown.json["waiting"]?.stringValue == "waiting: no worker with tags a100 has 40 GB of free GPU memory", "\(shown.text)")
            let bad = try await client.execute(uri: "/api/jobs", method: .post, headers: auth,
                                               body: ByteBuffer(string: t.config("resources: {tags: [a100], gpu_memory: 40}\n")))
            #expect(bad.status == .badRequest)
            #expect(bad.json["field"]?.stringValue == "resources.gpu_memory", "\(bad.text)")
            #expect(bad.json["message"]?.stringValue?.contains("unknown key; allowed keys are tags, gpu_memory_gb") == true, "\(bad.text)")
        }
    }

    /// A token past its expiry signs nothing in, and its holder is told why.
    @Test func anExpiredTokenIsRefusedSayingSo() async throws {
        let store = MemoryJobStore()
        let made = Date(timeIntervalSince1970: 1_800_000_000)
        let then = UserControl(store: store, now: { made })
        try await then.addUser("kim", role: .member)
        let (token, record) = try await then.createToken(user: "kim", label: nil, lifetime: try APIToken.lifetime("12h"))
        #expect(record.expiresAt == made.addingTimeInterval(12 * 3600))
        #expect(try await then.caller(token: token)?.name == "kim")
        let later = UserControl(store: store, now: { made.addingTimeInterval(12 * 3600) })
        #expect(try await later.caller(token: token) == nil)
        #expect(try await later.caller(tokenID: record.id) == nil, "a page signed in with it is signed out")
        #expect(try await later.refusal(token: token)?.contains("expired") == true)
        #expect(try await later.refusal(token: String(token.dropLast()) + (token.last == "A" ? "B" : "A")) == nil, "a wrong secret learns nothing")
    }
}
