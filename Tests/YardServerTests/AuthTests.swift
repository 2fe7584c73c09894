import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import YardDomain

/// The attack probe's auth findings: with a token set, no spelling of any
/// route reaches a handler without it, and the scheme is case-insensitive.
@Suite("Auth")
struct AuthTests {
    static let token = "s3cr3t-token"

    /// Every route the API has, with ids that exist in the fixture.
    static let routes: [(method: String, path: String)] = [
        ("GET", "/api/jobs"), ("POST", "/api/jobs"), ("GET", "/api/jobs/j1"), ("POST", "/api/jobs/j1/stop"),
        ("POST", "/api/jobs/j1/resume"), ("GET", "/api/jobs/j1/events"), ("GET", "/api/jobs/j1/logs"),
        ("GET", "/api/models"), ("POST", "/api/models"), ("POST", "/api/models/m/aliases"), ("GET", "/api/models/m/aliases/champion"),
        ("GET", "/api/models/m"), ("DELETE", "/api/models/m/aliases/champion"), ("POST", "/api/models/m/aliases/champion/rollback"),
        ("GET", "/api/models/m/versions/1/weights"), ("POST", "/api/models/m/versions/1/export"),
        ("GET", "/api/models/m/settings"), ("PUT", "/api/models/m/settings"), ("POST", "/api/predict/m"), ("GET", "/api/serving"), ("GET", "/api/openapi.json"), ("GET", "/metrics"),
        ("GET", "/api/sweeps"), ("POST", "/api/sweeps"), ("GET", "/api/sweeps/s"), ("POST", "/api/sweeps/s/stop"), ("GET", "/api/workers"), ("GET", "/api/events/head"),
        ("GET", "/api/datasets"), ("POST", "/api/datasets"), ("GET", "/api/datasets/d"), ("GET", "/api/datasets/d/versions/1/report"),
    ]

    /// Spellings a lenient router or proxy may take for the same route.
    static func variants(of path: String) -> [String] {
        let segments = path.split(separator: "/").map(String.init)
        var out: Set<String> = ["/" + path, path + "/", path + "/.", path.uppercased(), path.capitalized,
                                "/" + segments[0].uppercased() + "/" + segments.dropFirst().joined(separator: "/"),
                                path.replacingOccurrences(of: "/api/", with: "/api/./"), path.replacingOccurrences(of: "/api/", with: "/api/x/../"),
                                "/./" + path.dropFirst(), path.replacingOccurrences(of: "/", with: "\\"), path + "%00"]
        for i in 1..<segments.count {
            let before = "/" + segments[..<i].joined(separator: "/"), after = segments[i...].joined(separator: "/")
            out.insert(before + "//" + after)
            out.insert(before + "%2F" + after)
            out.insert(before + "%2f" + after)
            out.insert(before + "/%2E/" + after)
        }
        out.remove(path)
        return out.sorted()
    }

    @Test func noSpellingOfAnyRouteGetsInWithoutTheToken() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: j1")))
        try await t.live { port in
            for route in Self.routes {
                let canonical = try await RawHTTP.send(port: port, method: route.method, target: route.path, body: "{}")
                #expect(canonical.status == 401, "\(route.method) \(route.path) without a token")
                for path in Self.variants(of: route.path) {
                    let reply = try await RawHTTP.send(port: port, method: route.method, target: path, body: "{}")
                    #expect(reply.status == 400 || reply.status == 401, "\(route.method) \(path) answered \(reply.status): \(reply.body.prefix(100))")
                }
                guard !route.path.hasSuffix("/events") else { continue }  // streams until the job ends
                let authorised = try await RawHTTP.send(port: port, method: route.method, target: route.path,
                                                        headers: ["Authorization": "Bearer \(Self.token)"], body: "{}")
                #expect(authorised.status != 401, "\(route.method) \(route.path) with the token answered \(authorised.status)")
            }
            // Nothing was submitted, stopped or registered by the variants.
            let jobs = try await RawHTTP.send(port: port, method: "GET", target: "/api/jobs", headers: ["Authorization": "Bearer \(Self.token)"])
            #expect(jobs.body.components(separatedBy: "\"id\"").count == 2, "only j1: \(jobs.body.prefix(300))")
            #expect(jobs.body.contains("\"queued\""))
        }
    }

    @Test func healthIsTheOnlyOpenRoute() async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        try await t.live { port in
            for (target, status) in [("/health", 200), ("//health", 400), ("/nothing", 401), ("/health/../api/jobs", 400), ("/HEALTH", 401)] {
                let reply = try await RawHTTP.send(port: port, method: "GET", target: target)
                #expect(reply.status == status, "\(target)")
            }
        }
    }

    @Test(arguments: ["Bearer s3cr3t-token", "bearer s3cr3t-token", "BEARER s3cr3t-token", "Bearer   s3cr3t-token"])
    func theSchemeIsCaseInsensitive(header: String) async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .get, headers: [.authorization: header]) { #expect($0.status == .ok) }
        }
    }

    @Test(arguments: ["Basic s3cr3t-token", "Bearer", "Bearer ", "s3cr3t-token", "Bearer s3cr3t-tokenX", "Bearers3cr3t-token", "Bearer s3cr3t"])
    func wrongCredentialsAre401(header: String) async throws {
        let t = try TestYard(token: Self.token)
        defer { t.dir.remove() }
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .get, headers: [.authorization: header]) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
            }
        }
    }

    @Test func withoutATokenPathsMustStillBeCanonical() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.live { port in
            let reply = try await RawHTTP.send(port: port, method: "GET", target: "/api//jobs")
            #expect(reply.status == 400)
            #expect(reply.body.contains("\"field\":\"path\""))
            let plain = try await RawHTTP.send(port: port, method: "GET", target: "/api/jobs")
            #expect(plain.status == 200)
        }
    }
}
