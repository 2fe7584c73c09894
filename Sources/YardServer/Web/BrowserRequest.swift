import Foundation
import HTTPTypes
import Hummingbird

/// What a request says about the browser that sent it: its session cookie
/// and whether it came from a page of this server (Origin, Sec-Fetch-Site).
enum BrowserRequest {
    /// The value of cookie `name`, if the request carries it.
    static func cookie(_ name: String, in request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }

    /// Why this request is not from a page of this server, or nil when
    /// nothing says it is from elsewhere: a browser's `Sec-Fetch-Site` other
    /// than same-origin (or none: typed by the user), or an `Origin` whose
    /// host and port are not the `Host` it was sent to. Clients that are not
    /// browsers send neither.
    static func crossSiteReason(_ request: Request) -> String? {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!]?.lowercased(), site != "same-origin", site != "none" {
            return "Sec-Fetch-Site: \(site.prefix(20))"
        }
        guard let origin = request.headers[HTTPField.Name("Origin")!] else { return nil }
        // The name the browser sent the request to (HTTP/1's Host becomes the authority).
        let hosts = [request.head.authority, request.headers[HTTPField.Name("Host")!]].compactMap { $0?.lowercased() }.filter { !$0.isEmpty }
        let lower = origin.lowercased()
        for scheme in ["http://", "https://"] where lower.hasPrefix(scheme) {
            if hosts.contains(String(lower.dropFirst(scheme.count))) { return nil }
        }
        return "Origin: \(origin.prefix(80))"
    }

    static func isSafe(_ method: HTTPRequest.Method) -> Bool {
        method == .get || method == .head || method == .options
    }
}
