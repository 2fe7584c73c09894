import Foundation
import HTTPTypes
import Hummingbird

/// The dashboard: every page path answers the one page (`index.html`; its
/// modules route in the browser) and every other file of web/ is served
/// under `/ui/`, revalidated by ETag and gzipped for clients that take it.
struct WebController<Context: RequestContext> {
    /// Paths the browser's router knows; each answers index.html.
    static var pages: [String] { ["/", "/jobs", "/jobs/{id}", "/compare", "/sweeps", "/sweeps/{id}", "/models", "/models/{name}", "/playground", "/datasets", "/datasets/{name}", "/workers", signInPage] }
    static var signInPage: String { "/sign-in" }
    /// The API's documentation: a page of its own (docs.html) that renders /api/openapi.json.
    static var docsPage: String { "/api/docs" }
    static var assetRoutes: Set<String> { Set(WebAssets.all.keys.filter { $0 != "index.html" }.map { "/ui/" + $0 }) }

    func addRoutes(to router: some RouterMethods<Context>) {
        guard let index = WebAssets.all["index.html"] else { return }
        for page in Self.pages {
            router.get(RouterPath(page)) { request, _ in Self.serve(index, request) }
        }
        if let docs = WebAssets.all["docs.html"] {
            router.get(RouterPath(Self.docsPage)) { request, _ in Self.serve(docs, request) }
        }
        for (path, asset) in WebAssets.all where path != "index.html" {
            router.get(RouterPath("/ui/" + path)) { request, _ in Self.serve(asset, request) }
        }
    }

    static func serve(_ asset: WebAssets.Asset, _ request: Request) -> Response {
        var headers: HTTPFields = [.contentType: asset.contentType, .eTag: asset.etag, .cacheControl: "no-cache"]
        if let known = request.headers[.ifNoneMatch], known.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == asset.etag }) {
            return Response(status: .notModified, headers: headers)
        }
        guard let gzip = asset.gzip else { return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body)) }
        headers[.vary] = "Accept-Encoding"
        guard acceptsGzip(request.headers[.acceptEncoding]) else { return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body)) }
        headers[.contentEncoding] = "gzip"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: gzip))
    }

    /// Whether `Accept-Encoding` lists gzip without refusing it (`gzip;q=0`).
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        return header.split(separator: ",").contains { item in
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard parts.first == "gzip" else { return false }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return q > 0
        }
    }
}
