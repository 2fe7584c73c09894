import Foundation
import YardDomain

/// A lineage bundle read back (`yard rerun --from-bundle`): the files of a
/// POSIX tar as `yard lineage --bundle` writes it, by name.
struct LineageBundleFile {
    static let format = "trainyard-lineage-bundle"
    /// The most a bundle may weigh (a dataset manifest of a million files is ~100 MB).
    static let maxBytes = 512 << 20

    let path: String
    let files: [String: Data]

    init(path: String) throws {
        self.path = path
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int else {
            throw YardError(.notFound, field: "--from-bundle", "--from-bundle: \(path) does not exist; write one with `yard lineage REF --bundle OUT.tar`")
        }
        guard size <= Self.maxBytes, let data = FileManager.default.contents(atPath: path) else {
            throw YardError.invalid("--from-bundle", "\(path): larger than \(Self.maxBytes >> 20) MiB or unreadable; not a lineage bundle")
        }
        files = try Self.read(data, path: path)
        guard let index = files["bundle.json"].flatMap({ try? JSONDecoder().decode(JSONValue.self, from: $0) }),
              index["format"]?.stringValue == Self.format, files["lineage.json"] != nil, files["config.json"] != nil else {
            throw YardError.invalid("--from-bundle", "\(path): not a lineage bundle (no bundle.json, lineage.json and config.json); write one with `yard lineage REF --bundle OUT.tar`")
        }
    }

    var lineage: Lineage {
        get throws {
            do { return try APIClient.decoder.decode(Lineage.self, from: files["lineage.json"]!) } catch {
                throw YardError.invalid("--from-bundle", "\(path): lineage.json is not a lineage record (\(Self.describe(error)))")
            }
        }
    }

    var config: [String: JSONValue] {
        get throws {
            guard let config = try? JSONDecoder().decode(JSONValue.self, from: files["config.json"]!).objectValue else {
                throw YardError.invalid("--from-bundle", "\(path): config.json is not a config mapping")
            }
            return config
        }
    }

    /// ustar entries: 512-byte headers, each file's bytes padded to 512.
    static func read(_ data: Data, path: String) throws -> [String: Data] {
        let bytes = [UInt8](data)
        var files: [String: Data] = [:]
        var offset = 0
        func damaged(_ why: String) -> YardError { YardError.invalid("--from-bundle", "\(path): not a lineage bundle (\(why))") }
        while offset + 512 <= bytes.count {
            let header = bytes[offset..<offset + 512]
            if header.allSatisfy({ $0 == 0 }) { return files }
            let name = String(decoding: header.prefix(100).prefix { $0 != 0 }, as: UTF8.self)
            let sizeText = String(decoding: header.dropFirst(124).prefix(12).prefix { $0 != 0 && $0 != 32 }, as: UTF8.self)
            guard let size = Int(sizeText, radix: 8), size >= 0, offset + 512 + size <= bytes.count else { throw damaged("a damaged entry at byte \(offset)") }
            let type = header[header.startIndex + 156]
            if type == UInt8(ascii: "0") || type == 0 {
                guard !name.isEmpty, files.count < 10_000 else { throw damaged("an entry without a name") }
                files[name] = Data(bytes[(offset + 512)..<(offset + 512 + size)])
            }
            offset += 512 + (size + 511) / 512 * 512
        }
        throw damaged("it ends without the end-of-archive blocks")
    }

    static func describe(_ error: any Error) -> String {
        if case DecodingError.keyNotFound(let key, _) = error { return "no \(key.stringValue)" }
        if case DecodingError.typeMismatch(_, let context) = error { return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))" }
        return "unreadable"
    }
}
