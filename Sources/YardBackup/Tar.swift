import Foundation
import YardDomain

/// The tar format the backups use: POSIX ustar headers, with a pax extended
/// header before a member whose path or size does not fit ustar's fields.
/// Written and read here rather than by `/usr/bin/tar`, so the writer hashes
/// each file as it streams it (one read per file) and the reader refuses a
/// hostile member (absolute, `..`, symlink, device) before it is written
/// anywhere, naming it.
enum Tar {
    static let block = 512

    enum Kind: UInt8 {
        case file = 0x30       // '0' ('\0' and '7' read as this too)
        case hardLink = 0x31   // '1'
        case directory = 0x35  // '5'
        case pax = 0x78        // 'x'
        case globalPax = 0x67  // 'g'
    }

    /// One ustar header (plus the pax header before it when needed).
    static func header(path: String, kind: Kind, size: Int64, mode: Int, mtime: Int64, link: String = "") -> [UInt8] {
        var records: [(String, String)] = []
        let pathBytes = Array(path.utf8)
        let linkBytes = Array(link.utf8)
        let fitsName = pathBytes.count <= 100 && path.allSatisfy(\.isASCII)
        if !fitsName { records.append(("path", path)) }
        if linkBytes.count > 100 || !link.allSatisfy(\.isASCII) { records.append(("linkpath", link)) }
        if size > 0o77777777777 { records.append(("size", String(size))) }
        var out: [UInt8] = []
        if !records.isEmpty {
            var data: [UInt8] = []
            for (key, value) in records { data += paxRecord(key, value) }
            out += ustar(name: Array(("PaxHeader/" + (path as NSString).lastPathComponent).utf8.prefix(100)),
                         kind: .pax, size: Int64(data.count), mode: 0o644, mtime: mtime, link: [])
            out += data
            out += [UInt8](repeating: 0, count: padding(Int64(data.count)))
        }
        out += ustar(name: Array(pathBytes.suffix(100)), kind: kind, size: size > 0o77777777777 ? 0 : size, mode: mode, mtime: mtime,
                     link: Array(linkBytes.prefix(100)))
        return out
    }

    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while String(length).utf8.count + body.utf8.count != length { length = String(length).utf8.count + body.utf8.count }
        return Array("\(length)\(body)".utf8)
    }

    static func padding(_ size: Int64) -> Int { Int((Int64(block) - size % Int64(block)) % Int64(block)) }

    private static func ustar(name: [UInt8], kind: Kind, size: Int64, mode: Int, mtime: Int64, link: [UInt8]) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: block)
        func put(_ bytes: [UInt8], at offset: Int, max: Int) {
            for (i, b) in bytes.prefix(max).enumerated() { h[offset + i] = b }
        }
        func octal(_ value: Int64, at offset: Int, width: Int) {
            let digits = String(value, radix: 8)
            let padded = String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
            put(Array(padded.utf8), at: offset, max: width - 1)
        }
        put(name, at: 0, max: 100)
        octal(Int64(mode & 0o7777), at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(max(0, mtime), at: 136, width: 12)
        h[156] = kind.rawValue
        put(link, at: 157, max: 100)
        put(Array("ustar".utf8) + [0], at: 257, max: 6)
        put(Array("00".utf8), at: 263, max: 2)
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int($1) }
        let digits = String(sum, radix: 8)
        put(Array((String(repeating: "0", count: max(0, 6 - digits.count)) + digits).utf8) + [0, 0x20], at: 148, max: 8)
        return h
    }

    /// A header as read: the fields the reader needs, checked.
    struct Header {
        var path: String
        var kind: Kind
        var size: Int64
        var mode: Int
        var mtime: Int64
        var link: String
    }

    enum ParseResult {
        case header(Header)
        case end
    }

    /// Parses one 512-byte block; nil path means an all-zero block.
    static func parse(_ h: [UInt8], pax: [String: String]) throws -> Header? {
        if h.allSatisfy({ $0 == 0 }) { return nil }
        func text(_ offset: Int, _ length: Int) -> String {
            let slice = h[offset..<(offset + length)]
            let end = slice.firstIndex(of: 0) ?? slice.endIndex
            return String(decoding: h[offset..<end], as: UTF8.self)
        }
        func number(_ offset: Int, _ length: Int) throws -> Int64 {
            let raw = text(offset, length).trimmingCharacters(in: CharacterSet(charactersIn: " \0"))
            if raw.isEmpty { return 0 }
            guard let value = Int64(raw, radix: 8), value >= 0 else { throw damaged("a header with an unreadable number (\(text(0, 100)))") }
            return value
        }
        let stored = try number(148, 8)
        var unsigned = 0, signed = 0
        for (i, b) in h.enumerated() {
            let byte = (148..<156).contains(i) ? 0x20 : b
            unsigned += Int(byte)
            signed += Int(Int8(bitPattern: byte))
        }
        guard stored == unsigned || stored == signed else { throw damaged("a header whose checksum does not match (near \(text(0, 100)))") }
        let name = text(0, 100), prefix = text(345, 155)
        let path = pax["path"] ?? (prefix.isEmpty ? name : prefix + "/" + name)
        let flag = h[156]
        let kind: Kind
        switch flag {
        case 0, 0x30, 0x37: kind = .file
        case 0x31: kind = .hardLink
        case 0x35: kind = .directory
        case 0x78: kind = .pax
        case 0x67: kind = .globalPax
        case 0x32: throw damaged("\(path) is a symlink; a backup holds none, so this archive is not one yard made (nothing restored)")
        default: throw damaged("\(path) is a member of type '\(Character(Unicode.Scalar(flag)))' (device, FIFO or extension); a backup holds only files (nothing restored)")
        }
        var size = try number(124, 12)
        if let paxSize = pax["size"] {
            guard let value = Int64(paxSize), value >= 0 else { throw damaged("\(path) has an unreadable size") }
            size = value
        }
        return Header(path: path, kind: kind, size: size, mode: Int(try number(100, 8)), mtime: try number(136, 12),
                      link: pax["linkpath"] ?? text(157, 100))
    }

    /// Pax records (`LEN key=value\n`), with limits.
    static func parsePax(_ data: [UInt8]) throws -> [String: String] {
        var out: [String: String] = [:]
        var index = 0
        while index < data.count {
            guard let space = data[index...].firstIndex(of: 0x20), let length = Int(String(decoding: data[index..<space], as: UTF8.self)),
                  length > 0, index + length <= data.count, data[index + length - 1] == 0x0A
            else { throw damaged("a pax header that cannot be read") }
            let record = String(decoding: data[(space + 1)..<(index + length - 1)], as: UTF8.self)
            guard let eq = record.firstIndex(of: "=") else { throw damaged("a pax record without '='") }
            out[String(record[..<eq])] = String(record[record.index(after: eq)...])
            index += length
        }
        return out
    }

    static func damaged(_ what: String) -> YardError {
        YardError(.invalidInput, field: "archive", "the archive is damaged or not a yard backup: \(what)")
    }
}
