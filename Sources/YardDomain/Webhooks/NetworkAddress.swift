import Foundation

/// An IPv4 or IPv6 address, and whether it is one a webhook must not reach
/// without `--allow-private-webhooks`: loopback, link-local, private,
/// unspecified (and IPv4 addresses written as IPv6).
public struct NetworkAddress: Sendable, Hashable {
    /// 4 bytes (IPv4) or 16 (IPv6).
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// A literal address (`10.0.0.1`, `::1`, `fe80::1%eth0`), or nil for a name.
    public init?(literal text: String) {
        let plain = text.split(separator: "%", maxSplits: 1).first.map(String.init) ?? text
        var v4 = in_addr()
        if inet_pton(AF_INET, plain, &v4) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, plain, &v6) == 1 {
            self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    /// Why the address is refused ("loopback", "private", ...), nil when it is public.
    public var privateKind: String? {
        if bytes.count == 4 { return Self.v4Kind(bytes) }
        if bytes.allSatisfy({ $0 == 0 }) { return "unspecified" }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return "loopback" }
        // ::ffff:a.b.c.d and ::a.b.c.d (IPv4 written as IPv6), 64:ff9b::a.b.c.d (NAT64)
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && ((bytes[10] == 0xff && bytes[11] == 0xff) || (bytes[10] == 0 && bytes[11] == 0)) {
            return Self.v4Kind(Array(bytes[12..<16]))
        }
        if bytes[0] == 0x00 && bytes[1] == 0x64 && bytes[2] == 0xff && bytes[3] == 0x9b { return Self.v4Kind(Array(bytes[12..<16])) }
        if bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80 { return "link-local" }
        if (bytes[0] & 0xfe) == 0xfc { return "private" }
        if bytes[0] == 0xff { return "multicast" }
        return nil
    }

    private static func v4Kind(_ b: [UInt8]) -> String? {
        switch (b[0], b[1]) {
        case (0, _): return "unspecified"
        case (127, _): return "loopback"
        case (169, 254): return "link-local"
        case (10, _): return "private"
        case (172, 16...31): return "private"
        case (192, 168): return "private"
        case (100, 64...127): return "private"  // carrier-grade NAT
        case (224...255, _): return "multicast or reserved"
        default: return nil
        }
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(cString: buffer)
    }
}
