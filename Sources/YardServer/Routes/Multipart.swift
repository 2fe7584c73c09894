import Foundation
import CYardSpawn
import YardDomain

/// The file parts of a `multipart/form-data` body (RFC 7578), read from
/// bytes already held: each part's headers up to its blank line, its body up
/// to the next boundary. Parts without a body are not returned, but every
/// part counts against `maxParts`.
///
/// The work is linear in the body: each delimiter is found with `memmem`
/// (glibc's two-way search, linear whatever the bytes), the search resumes
/// where the last part ended, and a part's headers are looked for only in
/// its first `maxHeaderBytes`. A body of 200,000 empty parts is refused at
/// part `maxParts + 1`, before the rest is read.
enum Multipart {
    struct Part {
        var name: String?
        var filename: String?
        var contentType: String?
        var body: Data
    }

    /// The most bytes of headers a part may have.
    static let maxHeaderBytes = 8 << 10

    /// The boundary of a `multipart/form-data; boundary=...` content type.
    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].lowercased() == "boundary" else { continue }
            let value = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            // RFC 2046: 1 to 70 characters.
            return value.isEmpty || value.utf8.count > 70 ? nil : value
        }
        return nil
    }

    /// Every part counts against `maxParts`, with a body or without; the
    /// part after it stops the parse with an error.
    static func parts(_ body: Data, boundary: String, maxParts: Int = .max) throws(YardError) -> [Part] {
        let result: Result<[Part], YardError> = body.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            do throws(YardError) {
                return .success(try parts(bytes, boundary: Array(boundary.utf8), maxParts: maxParts))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private static func parts(_ bytes: UnsafeBufferPointer<UInt8>, boundary: [UInt8], maxParts: Int) throws(YardError) -> [Part] {
        let delimiter = Array("--".utf8) + boundary
        let next = Array("\r\n".utf8) + delimiter
        guard var cursor = find(delimiter, in: bytes, from: 0) else {
            throw YardError.invalid("body", "multipart body has no part with its boundary")
        }
        cursor += delimiter.count
        var parts: [Part] = []
        var counted = 0
        while true {
            // "--" after a boundary ends the body.
            if cursor + 1 < bytes.count, bytes[cursor] == 0x2D, bytes[cursor + 1] == 0x2D { break }
            guard let end = find(next, in: bytes, from: cursor) else {
                throw YardError.invalid("body", "multipart body ends without its closing boundary")
            }
            counted += 1
            if counted > maxParts {
                throw YardError.invalid("images", "more than \(maxParts) parts in one request; at most \(maxParts) (one image each)")
            }
            let part = UnsafeBufferPointer(rebasing: bytes[cursor..<end])
            cursor = end + next.count
            guard let parsed = try Self.part(part) else { continue }
            parts.append(parsed)
        }
        return parts
    }

    /// One part: its headers up to the blank line, then its body; nil when it has no body.
    private static func part(_ part: UnsafeBufferPointer<UInt8>) throws(YardError) -> Part? {
        let separator = Array("\r\n\r\n".utf8)
        let window = UnsafeBufferPointer(rebasing: part[0..<min(part.count, maxHeaderBytes + separator.count)])
        guard let split = find(separator, in: window, from: 0) else {
            if part.count > maxHeaderBytes {
                throw YardError.invalid("body", "a multipart part has more than \(maxHeaderBytes >> 10) KB of headers")
            }
            return nil
        }
        let bodyStart = split + separator.count
        guard bodyStart < part.count else { return nil }
        var result = Part(body: Data(UnsafeBufferPointer(rebasing: part[bodyStart...])))
        let headerText = String(decoding: UnsafeBufferPointer(rebasing: part[0..<split]), as: UTF8.self)
        for line in headerText.split(whereSeparator: \.isNewline) {
            let pair = line.split(separator: ":", maxSplits: 1)
            guard pair.count == 2 else { continue }
            let value = pair[1].trimmingCharacters(in: .whitespaces)
            switch pair[0].lowercased() {
            case "content-type": result.contentType = value
            case "content-disposition":
                for item in value.split(separator: ";").dropFirst() {
                    let kv = item.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                    guard kv.count == 2 else { continue }
                    let text = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                    if kv[0] == "name" { result.name = text } else if kv[0] == "filename" { result.filename = text }
                }
            default: break
            }
        }
        return result
    }

    /// The offset of `needle` in `haystack` at or after `from`, in linear time.
    static func find(_ needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
        guard from <= haystack.count, let base = haystack.baseAddress, !needle.isEmpty else { return nil }
        return needle.withUnsafeBytes { pattern -> Int? in
            guard let found = cyard_memmem(base + from, haystack.count - from, pattern.baseAddress, pattern.count) else { return nil }
            return UnsafeRawPointer(found) - UnsafeRawPointer(base)
        }
    }
}
