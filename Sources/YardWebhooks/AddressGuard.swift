import Foundation
import YardDomain

/// The server-side request forgery guard at delivery time: a target's host
/// is resolved and refused when any of its addresses is loopback,
/// link-local, private or unspecified (unless `--allow-private-webhooks`).
/// Names are resolved on a thread of their own (getaddrinfo blocks).
enum AddressGuard {
    struct Refused: Error, CustomStringConvertible {
        let description: String
    }

    /// Throws `Refused` for a private target; resolution errors are thrown too.
    static func check(_ url: WebhookURL, allowPrivate: Bool) async throws {
        guard !allowPrivate else { return }
        let addresses: [NetworkAddress]
        if let literal = NetworkAddress(literal: url.host) {
            addresses = [literal]
        } else {
            let host = url.host
            addresses = try await offloadThrowing { () throws(Refused) in try resolve(host) }
        }
        if let bad = addresses.first(where: { $0.privateKind != nil }), let kind = bad.privateKind {
            throw Refused(description: "\(url.masked) resolves to a \(kind) address (\(bad.description)); refused unless the server runs with --allow-private-webhooks")
        }
    }

    static func resolve(_ host: String) throws(Refused) -> [NetworkAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &result)
        guard status == 0, let first = result else {
            throw Refused(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var addresses: [NetworkAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let info = node {
            if let sockaddr = info.pointee.ai_addr {
                if info.pointee.ai_family == AF_INET {
                    let bytes = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin_addr) { Array($0) }
                    }
                    if let address = NetworkAddress(bytes: bytes) { addresses.append(address) }
                } else if info.pointee.ai_family == AF_INET6 {
                    let bytes = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                    }
                    if let address = NetworkAddress(bytes: bytes) { addresses.append(address) }
                }
            }
            node = info.pointee.ai_next
        }
        guard !addresses.isEmpty else { throw Refused(description: "cannot resolve \(host): no address") }
        return addresses
    }
}
