import Foundation
import Hummingbird

/// The dashboard's files (web/), embedded in the binary by
/// scripts/embed_web.py so an installed `yard` needs nothing beside it.
/// Decoded once, on first use; each has its type, an ETag from its bytes
/// and, where smaller, a gzipped body.
enum WebAssets {
    struct Embedded: Sendable {
        let path: String
        let size: Int
        let base64: String
        let gzipBase64: String?
    }

    struct Asset: Sendable {
        let path: String
        let contentType: String
        let body: ByteBuffer
        let gzip: ByteBuffer?
        let etag: String
    }

    /// Every file by its path under web/ (`app.js`, `vendor/uplot/uPlot.iife.js`).
    static let all: [String: Asset] = {
        var assets: [String: Asset] = [:]
        for file in embedded {
            guard let raw = Data(base64Encoded: file.base64, options: .ignoreUnknownCharacters) else { continue }
            let gzip = file.gzipBase64.flatMap { Data(base64Encoded: $0, options: .ignoreUnknownCharacters) }
            assets[file.path] = Asset(path: file.path, contentType: contentType(of: file.path), body: ByteBuffer(bytes: raw),
                                      gzip: gzip.map { ByteBuffer(bytes: $0) }, etag: "\"\(fingerprint(raw))\"")
        }
        return assets
    }()

    static func contentType(of path: String) -> String {
        switch path.split(separator: ".").last.map(String.init) ?? "" {
        case "html": "text/html; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "json": "application/json"
        default: "text/plain; charset=utf-8"
        }
    }

    /// FNV-1a (64 bits) of the bytes with their length: changes whenever a file does.
    static func fingerprint(_ data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16) + "-" + String(data.count, radix: 16)
    }
}
