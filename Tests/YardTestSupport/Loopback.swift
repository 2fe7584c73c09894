import Glibc

/// Raw TCP sockets on 127.0.0.1 for tests that need what a client library
/// hides: a free port, a listener that never answers, a reader with a tiny
/// receive buffer, a request written byte for byte.
public struct LoopbackError: Error, CustomStringConvertible {
    public var description: String
}

public struct NoFreePort: Error {}

/// A TCP port on 127.0.0.1 that was free a moment ago.
public func freePort() throws -> Int {
    guard let (fd, port) = try? bindLoopback() else { throw NoFreePort() }
    close(fd)
    return port
}

/// A TCP socket bound to a free port on 127.0.0.1 (not listening yet): its
/// descriptor and the port.
public func bindLoopback() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw LoopbackError(description: "socket failed") }
    var address = loopbackAddress(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else {
        close(fd)
        throw LoopbackError(description: "bind on 127.0.0.1 failed")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A TCP socket connected to 127.0.0.1:`port`, its receive buffer and
/// receive timeout set first when given.
public func connectLoopback(port: Int, receiveBuffer: Int32? = nil, receiveTimeout seconds: Int? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw LoopbackError(description: "socket failed") }
    if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
    if let seconds {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
    var address = loopbackAddress(port: port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw LoopbackError(description: "connect to \(port) failed")
    }
    return fd
}

private func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}
