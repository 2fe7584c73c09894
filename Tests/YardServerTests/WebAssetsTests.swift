import Foundation
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import YardServer

/// The dashboard's files as `yard` serves them: the embedded copy matches
/// web/ (scripts/embed_web.py was run), each has its type, an ETag and
/// gzip, and every page carries the strict headers.
@Suite("Dashboard files")
struct WebAssetsTests {
    static let webDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("web")

    static func filesInWeb() throws -> [String: Data] {
        var files: [String: Data] = [:]
        let root = webDirectory.standardizedFileURL.path
        guard let walker = FileManager.default.enumerator(atPath: root) else { return files }
        for case let relative as String in walker {
            let path = root + "/" + relative
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  !(relative as NSString).lastPathComponent.hasPrefix(".") else { continue }
            files[relative] = try Data(contentsOf: URL(fileURLWithPath: path))
        }
        return files
    }

    @Test func theEmbeddedFilesAreThoseOfWebAndNotStale() throws {
        let files = try Self.filesInWeb()
        #expect(!files.isEmpty, "no files in \(Self.webDirectory.path)")
        let embedded = Dictionary(uniqueKeysWithValues: WebAssets.embedded.map { ($0.path, $0) })
        #expect(Set(files.keys) == Set(embedded.keys), "web/ and Sources/YardServer/Web/WebAssets.swift differ: run scripts/embed_web.py")
        for (path, data) in files {
            let copy = embedded[path].flatMap { Data(base64Encoded: $0.base64, options: .ignoreUnknownCharacters) }
            #expect(copy == data, "web/\(path) changed since it was embedded: run scripts/embed_web.py")
        }
    }

    @Test func pagesAnswerTheOnePageWithTheStrictHeaders() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            for path in ["/", "/jobs", "/jobs/abc-1", "/sweeps", "/models", "/datasets", "/workers", "/sign-in"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .ok, "\(path)")
                #expect(response.headers[.contentType] == "text/html; charset=utf-8", "\(path)")
                #expect(response.headers[HTTPField.Name("Content-Security-Policy")!] ==
                        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
                #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
                #expect(response.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer")
                #expect(String(buffer: response.body).contains("<script type=\"module\" src=\"/ui/app.js\"></script>"))
            }
            // Errors carry them too.
            let missing = try await client.execute(uri: "/nothing-here", method: .get)
            #expect(missing.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
        }
    }

    /// Issue 29: `/api/docs` is our own page (docs.html) with the strict
    /// headers; a browser without a session is sent to sign in first.
    @Test func theAPIDocsPageIsServedAndAsksForASession() async throws {
        let t = try TestYard(token: "docs-token")
        defer { t.dir.remove() }
        try await t.test { client in
            let anonymous = try await client.execute(uri: "/api/docs", method: .get)
            #expect(anonymous.status == .seeOther)
            #expect(anonymous.headers[.location] == "/sign-in?next=/api/docs")
            let page = try await client.execute(uri: "/api/docs", method: .get, headers: [.authorization: "Bearer docs-token"])
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("script-src 'self'") == true)
            #expect(String(buffer: page.body).contains("<script type=\"module\" src=\"/ui/docs.js\"></script>"))
            // Its files are public like the dashboard's; the document it renders is not.
            #expect(try await client.execute(uri: "/ui/docs.js", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/api/openapi.json", method: .get).status == .unauthorized)
        }
    }

    @Test func noPageHasInlineScriptOrStyle() throws {
        let files = try Self.filesInWeb()
        for page in ["index.html", "docs.html"] {
            let html = try #require(files[page].map { String(decoding: $0, as: UTF8.self) }, "web/\(page)")
            #expect(!html.contains("<style"), "inline <style> in \(page)")
            #expect(!html.contains("style="), "a style attribute in \(page)")
            for script in html.components(separatedBy: "<script").dropFirst() {
                #expect(script.hasPrefix(" src=") || script.hasPrefix(" type=\"module\" src="), "an inline script in \(page)")
            }
            #expect(!html.contains("http://") && !html.contains("https://"), "\(page) loads nothing from elsewhere (offline)")
        }
        for (path, data) in files where path.hasSuffix(".js") && !path.hasPrefix("vendor/") {
            let text = String(decoding: data, as: UTF8.self)
            #expect(!text.contains("innerHTML") && !text.contains("outerHTML") && !text.contains("insertAdjacentHTML"), "web/\(path) writes HTML")
        }
    }

    @Test func filesHaveTheirTypeAnETagAndGzip() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            let css = try await client.execute(uri: "/ui/app.css", method: .get)
            #expect(css.status == .ok)
            #expect(css.headers[.contentType] == "text/css; charset=utf-8")
            let js = try await client.execute(uri: "/ui/app.js", method: .get)
            #expect(js.headers[.contentType] == "text/javascript; charset=utf-8")
            #expect(js.headers[.contentEncoding] == nil)
            let etag = try #require(js.headers[.eTag])
            #expect(js.headers[.cacheControl] == "no-cache")
            let again = try await client.execute(uri: "/ui/app.js", method: .get, headers: [.ifNoneMatch: etag])
            #expect(again.status == .notModified)
            #expect(again.body.readableBytes == 0)
            let uplot = try await client.execute(uri: "/ui/vendor/uplot/uPlot.iife.js", method: .get, headers: [.acceptEncoding: "gzip, deflate, br"])
            #expect(uplot.headers[.contentEncoding] == "gzip")
            #expect(uplot.headers[.vary] == "Accept-Encoding")
            #expect(uplot.body.readableBytes < 60_000)
            let refused = try await client.execute(uri: "/ui/vendor/uplot/uPlot.iife.js", method: .get, headers: [.acceptEncoding: "gzip;q=0"])
            #expect(refused.headers[.contentEncoding] == nil)
            #expect(refused.body.readableBytes > 100_000)
            let licence = try await client.execute(uri: "/ui/vendor/uplot/LICENSE", method: .get)
            #expect(String(buffer: licence.body).contains("MIT License"))
        }
    }
}
