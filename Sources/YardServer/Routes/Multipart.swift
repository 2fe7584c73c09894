import Foundation
import YardDomain

/// The file parts of a `multipart/form-data` body (RFC 7578), read from
/// bytes already held: each part's headers up to its blank line, its body up
/// to the next boundary. Parts without a body are skipped.
enum Multipart {
    struct Part {
        var name: String?
        var filename: String?
        var contentType: String?
        var body: Data
    }

    /// The boundary of a `multipart/form-data; boundary=...` content type.
    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].lowercased() == "boundary" else { continue }
            let value = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            return value.isEmpty || value.count > 200 ? nil : value
        }
        return nil
    }

    /// Stops with an error at the part after `maxParts` (a body of many tiny parts is not parsed whole).
    static func parts(_ body: Data, boundary: String, maxParts: Int = .max) throws(YardError) -> [Part] {
        let delimiter = Data("--\(boundary)".utf8)
        let separator = Data("\r\n\r\n".utf8)
        guard var cursor = body.range(of: delimiter)?.upperBound else {
            throw YardError.invalid("body", "multipart body has no part with its boundary")
        }
        var parts: [Part] = []
        while true {
            // "--" after a boundary ends the body.
            if body[cursor...].starts(with: Data("--".utf8)) { break }
            guard let next = body.range(of: Data("\r\n".utf8) + delimiter, in: cursor..<body.endIndex) else {
                throw YardError.invalid("body", "multipart body ends without its closing boundary")
            }
            let part = body[cursor..<next.lowerBound]
            cursor = next.upperBound
            guard let split = part.range(of: separator) else { continue }
            let headerText = String(decoding: part[part.startIndex..<split.lowerBound], as: UTF8.self)
            var result = Part(body: Data(part[split.upperBound...]))
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
            if !result.body.isEmpty { parts.append(result) }
            if parts.count > maxParts { throw YardError.invalid("images", "more than \(maxParts) images in one request; at most \(maxParts)") }
        }
        return parts
    }
}
