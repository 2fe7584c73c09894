import Foundation

/// A training checkpoint on disk as torch saves it: a zip archive.
enum Checkpoint {
    /// Whether the file ends with the zip's end-of-central-directory record
    /// (its comment, if any, running to the last byte). Ultralytics rewrites
    /// `last.pt` in place, so an engine killed while writing it (its worker
    /// died, the machine lost power) leaves the start of a zip: Ultralytics
    /// then refuses to resume with "checkpoint not found". Nothing here
    /// reads the tensors; this only tells a cut-off file from a whole one.
    static func isComplete(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size >= 22 else { return false }
        // The record is 22 bytes plus a comment of at most 65,535.
        let span = min(size, 22 + 65_535)
        guard (try? handle.seek(toOffset: size - span)) != nil, let tail = try? handle.readToEnd(), tail.count == Int(span) else { return false }
        let bytes = [UInt8](tail)
        var at = bytes.count - 22
        while at >= 0 {
            if bytes[at] == 0x50, bytes[at + 1] == 0x4B, bytes[at + 2] == 0x05, bytes[at + 3] == 0x06 {
                let comment = Int(bytes[at + 20]) | Int(bytes[at + 21]) << 8
                if at + 22 + comment == bytes.count { return true }
            }
            at -= 1
        }
        return false
    }
}
