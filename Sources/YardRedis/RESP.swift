import NIOCore

/// A Redis reply (RESP2): what `redis-server` sends back. Bulk strings are
/// bytes (a job spec, a checkpoint key); `null` is RESP2's nil bulk string
/// or nil array (a key that is not there, a blocking read that timed out).
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    case array([RESPValue])
    case null

    /// The text of a simple or bulk string.
    public var string: String? {
        switch self {
        case .simpleString(let text): return text
        case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    public var int: Int64? {
        switch self {
        case .integer(let value): return value
        case .bulkString, .simpleString: return string.flatMap { Int64($0) }
        default: return nil
        }
    }

    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }
}

/// Writes commands as RESP arrays of bulk strings, as Redis expects them.
public enum RESPEncoder {
    /// Every command of every client goes through here: no copy of an
    /// argument and no heap string for a length (the queue's scripts send
    /// twenty arguments a call).
    public static func command(_ arguments: [String], into buffer: inout ByteBuffer) {
        header(UInt8(ascii: "*"), arguments.count, into: &buffer)
        for argument in arguments {
            header(UInt8(ascii: "$"), argument.utf8.count, into: &buffer)
            buffer.writeString(argument)
            buffer.writeStaticString("\r\n")
        }
    }

    /// `*3\r\n` or `$12\r\n`: a type byte, the count in decimal (a
    /// string that short lives inline, not on the heap), CRLF.
    static func header(_ type: UInt8, _ count: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(type)
        buffer.writeString(String(count))
        buffer.writeStaticString("\r\n")
    }

    public static func command(_ arguments: [String]) -> ByteBuffer {
        var buffer = ByteBuffer()
        command(arguments, into: &buffer)
        return buffer
    }
}

/// Reads replies from a byte stream. `parse` returns nil, consuming
/// nothing, until a whole reply has arrived; a reply that breaks the
/// protocol or its limits is an error (the connection is then unusable).
public struct RESPParser: Sendable {
    public struct ProtocolError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Largest bulk string accepted (Redis' own limit is 512 MB).
    public var maxBulkBytes: Int
    /// Deepest nesting of arrays accepted.
    public var maxDepth: Int
    /// Most elements in one array.
    public var maxElements: Int

    public init(maxBulkBytes: Int = 512 << 20, maxDepth: Int = 16, maxElements: Int = 1 << 20) {
        self.maxBulkBytes = maxBulkBytes
        self.maxDepth = maxDepth
        self.maxElements = maxElements
    }

    public func parse(_ buffer: inout ByteBuffer) throws(ProtocolError) -> RESPValue? {
        var view = buffer
        guard let value = try read(&view, depth: 0) else { return nil }
        buffer = view
        return value
    }

    private func read(_ buffer: inout ByteBuffer, depth: Int) throws(ProtocolError) -> RESPValue? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        guard let line = try readLine(&buffer, skipping: 1) else { return nil }
        switch type {
        case UInt8(ascii: "+"): return .simpleString(line)
        case UInt8(ascii: "-"): return .error(line)
        case UInt8(ascii: ":"):
            guard let value = Int64(line) else { throw ProtocolError(description: "redis sent an integer that is not one: \(line.prefix(40))") }
            return .integer(value)
        case UInt8(ascii: "$"):
            let length = try self.length(line, limit: maxBulkBytes, what: "bulk string")
            guard length >= 0 else { return .null }
            guard buffer.readableBytes >= length + 2 else { return nil }
            let bytes = buffer.readBytes(length: length)!
            guard buffer.readBytes(length: 2) == [13, 10] else { throw ProtocolError(description: "redis sent a bulk string without its CRLF") }
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            let count = try self.length(line, limit: maxElements, what: "array")
            guard count >= 0 else { return .null }
            guard depth < maxDepth else { throw ProtocolError(description: "redis sent arrays nested deeper than \(maxDepth)") }
            var values: [RESPValue] = []
            values.reserveCapacity(min(count, 1024))
            for _ in 0..<count {
                guard let value = try read(&buffer, depth: depth + 1) else { return nil }
                values.append(value)
            }
            return .array(values)
        default:
            throw ProtocolError(description: "redis sent an unknown reply type \(type)")
        }
    }

    /// The line after the type byte, up to CRLF; nil when the CRLF has not arrived.
    private func readLine(_ buffer: inout ByteBuffer, skipping: Int) throws(ProtocolError) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: 13) else {
            if view.count > 64 << 10 { throw ProtocolError(description: "redis sent a line longer than 64 KiB") }
            return nil
        }
        guard cr + 1 < view.endIndex else { return nil }
        guard view[cr + 1] == 10 else { throw ProtocolError(description: "redis sent a CR without LF") }
        let start = view.startIndex + skipping
        guard start <= cr else { throw ProtocolError(description: "redis sent a reply with no type") }
        let line = String(decoding: view[start..<cr], as: UTF8.self)
        buffer.moveReaderIndex(forwardBy: cr + 2 - view.startIndex)
        return line
    }

    /// A length field: -1 (null) or 0...limit.
    private func length(_ line: String, limit: Int, what: String) throws(ProtocolError) -> Int {
        guard let value = Int(line), value >= -1 else { throw ProtocolError(description: "redis sent a \(what) length that is not one: \(line.prefix(40))") }
        guard value <= limit else { throw ProtocolError(description: "redis sent a \(what) of \(value), over the limit of \(limit)") }
        return value
    }
}
