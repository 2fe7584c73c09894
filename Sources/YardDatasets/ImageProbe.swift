/// Reads an image's format and size from its first bytes, and checks the
/// structure Ultralytics' own scan checks (PIL's `verify()` and the JPEG end
/// marker), without decoding pixels.
public enum ImageProbe {
    /// The extensions Ultralytics trains on (`IMG_FORMATS`).
    public static let extensions: Set<String> = ["bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"]

    public struct Info: Sendable, Hashable {
        public var format: String
        public var width: Int
        public var height: Int
    }

    public enum Outcome: Sendable, Hashable {
        case ok(Info)
        /// Trainable, but with a defect Ultralytics repairs or warns about.
        case warning(Info, String)
        /// Ultralytics drops the image.
        case corrupt(String)
        /// A format whose size is not read here (dng, pfm, heic).
        case unchecked(String)
    }

    /// Header bytes `probe` needs at most (JPEG's metadata segments can be long).
    public static let headBytes = 256 * 1024

    public static func probe(head: [UInt8], tail: [UInt8], size: Int64, ext: String) -> Outcome {
        guard size > 0 else { return .corrupt("empty file") }
        let result: Outcome
        if head.starts(with: [0xFF, 0xD8, 0xFF]) {
            result = jpeg(head, tail: tail, size: size)
        } else if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            result = png(head, size: size)
        } else if head.starts(with: [0x42, 0x4D]) {
            result = bmp(head)
        } else if head.count >= 12, head.starts(with: Array("RIFF".utf8)), Array(head[8..<12]) == Array("WEBP".utf8) {
            result = webp(head)
        } else if head.starts(with: [0x49, 0x49, 0x2A, 0x00]) || head.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) {
            result = tiff(head, little: head[0] == 0x49)
        } else if ["dng", "pfm", "heic"].contains(ext) {
            return .unchecked(ext)
        } else {
            return .corrupt("not an image (no JPEG, PNG, BMP, WebP or TIFF header)")
        }
        if case .ok(let info) = result, info.width < 10 || info.height < 10 {
            return .corrupt("image size \(info.width)x\(info.height) is under 10 pixels a side")
        }
        return result
    }

    private static func be16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
    private static func le16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
    private static func be32(_ b: [UInt8], _ i: Int) -> Int { be16(b, i) << 16 | be16(b, i + 2) }
    private static func le32(_ b: [UInt8], _ i: Int) -> Int { le16(b, i) | le16(b, i + 2) << 16 }

    /// Walks the marker segments to the frame header (SOF0-15 but DHT, JPG, DAC).
    private static func jpeg(_ b: [UInt8], tail: [UInt8], size: Int64) -> Outcome {
        var i = 2
        var frame: Info?
        while i + 4 <= b.count {
            guard b[i] == 0xFF else { return .corrupt("JPEG: no marker at byte \(i) (damaged header)") }
            var marker = b[i + 1]
            while marker == 0xFF, i + 2 < b.count { i += 1; marker = b[i + 1] }  // fill bytes
            if marker == 0xD8 || (0xD0...0xD7).contains(marker) || marker == 0x01 { i += 2; continue }
            guard i + 4 <= b.count else { break }
            let length = be16(b, i + 2)
            guard length >= 2 else { return .corrupt("JPEG: bad segment length at byte \(i)") }
            if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                guard i + 9 <= b.count else { break }
                let info = Info(format: "jpeg", width: be16(b, i + 7), height: be16(b, i + 5))
                guard info.width > 0, info.height > 0 else { return .corrupt("JPEG: frame of size \(info.width)x\(info.height)") }
                frame = info
            }
            if marker == 0xDA, let frame {
                // Image data follows; a file cut inside it lacks the end marker.
                guard i + 2 + length < b.count || Int64(b.count) < size else { return .corrupt("JPEG: no image data after its header (truncated file)") }
                if tail != [0xFF, 0xD9] {
                    return .warning(frame, "corrupt JPEG: no end marker (truncated); Ultralytics re-saves it, --fix drops it")
                }
                return .ok(frame)
            }
            if marker == 0xDA || marker == 0xD9 { return .corrupt("JPEG: image data before any frame header") }
            i += 2 + length
        }
        if let frame, Int64(b.count) < size { return .ok(frame) }  // headers longer than what was read
        return .corrupt("JPEG: header ends before its image data (truncated file)")
    }

    /// Checks the signature, IHDR, every chunk's length within the file and
    /// the IHDR's CRC (the chunk PIL's verify reads first).
    private static func png(_ b: [UInt8], size: Int64) -> Outcome {
        guard b.count >= 33, Array(b[12..<16]) == Array("IHDR".utf8) else { return .corrupt("PNG: no IHDR chunk") }
        let crc = CRC32.checksum(b[12..<29])
        guard crc == UInt32(be32(b, 29)) else { return .corrupt("PNG: IHDR checksum mismatch (damaged header)") }
        let info = Info(format: "png", width: be32(b, 16), height: be32(b, 20))
        var i = 8
        var sawEnd = false
        while i + 8 <= b.count {
            let length = be32(b, i)
            let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
            if type == "IEND" { sawEnd = true; break }
            i += 12 + length
            if Int64(i) > size { return .corrupt("PNG: chunk \(type) runs past the end of the file (truncated)") }
        }
        if !sawEnd, Int64(i) >= size { return .corrupt("PNG: no IEND chunk (truncated)") }
        return .ok(info)
    }

    private static func bmp(_ b: [UInt8]) -> Outcome {
        guard b.count >= 26 else { return .corrupt("BMP: header truncated") }
        let headerSize = le32(b, 14)
        if headerSize == 12 { return .ok(Info(format: "bmp", width: le16(b, 18), height: le16(b, 20))) }
        let height = Int32(truncatingIfNeeded: le32(b, 22))
        return .ok(Info(format: "bmp", width: le32(b, 18), height: Int(height.magnitude)))
    }

    private static func webp(_ b: [UInt8]) -> Outcome {
        guard b.count >= 30 else { return .corrupt("WebP: header truncated") }
        switch String(decoding: b[12..<16], as: UTF8.self) {
        case "VP8 ":
            return .ok(Info(format: "webp", width: le16(b, 26) & 0x3FFF, height: le16(b, 28) & 0x3FFF))
        case "VP8L":
            let bits = le32(b, 21)
            return .ok(Info(format: "webp", width: (bits & 0x3FFF) + 1, height: ((bits >> 14) & 0x3FFF) + 1))
        case "VP8X":
            let w = Int(b[24]) | Int(b[25]) << 8 | Int(b[26]) << 16
            let h = Int(b[27]) | Int(b[28]) << 8 | Int(b[29]) << 16
            return .ok(Info(format: "webp", width: w + 1, height: h + 1))
        default:
            return .corrupt("WebP: unknown chunk")
        }
    }

    private static func tiff(_ b: [UInt8], little: Bool) -> Outcome {
        let u16 = { (i: Int) in little ? le16(b, i) : be16(b, i) }
        let u32 = { (i: Int) in little ? le32(b, i) : be32(b, i) }
        guard b.count >= 8 else { return .corrupt("TIFF: header truncated") }
        let ifd = u32(4)
        guard ifd + 2 <= b.count else { return .unchecked("tiff") }
        var width = 0, height = 0
        for n in 0..<u16(ifd) {
            let entry = ifd + 2 + n * 12
            guard entry + 12 <= b.count else { break }
            let tag = u16(entry), type = u16(entry + 2)
            let value = type == 3 ? u16(entry + 8) : u32(entry + 8)
            if tag == 256 { width = value }
            if tag == 257 { height = value }
        }
        guard width > 0, height > 0 else { return .corrupt("TIFF: no image size in its first directory") }
        return .ok(Info(format: "tiff", width: width, height: height))
    }
}

/// CRC-32 (ISO-HDLC), as PNG chunks carry it.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
