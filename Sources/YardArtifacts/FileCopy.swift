import Foundation
import YardDomain

/// Copies a file with plain reads and writes until end of file. Foundation's
/// copy trusts the size it saw first and spins forever when the source
/// shrinks mid-copy, which Ultralytics does to last.pt when it strips the
/// optimizer at the end of training.
public enum FileCopy {
    /// Copies `source` to `target` (replacing it). Returns false, and leaves
    /// no target, when the source changed during the copy (a torn snapshot).
    @discardableResult
    public static func copy(from source: String, to target: String) throws -> Bool {
        let fm = FileManager.default
        try? fm.removeItem(atPath: target)
        guard fm.createFile(atPath: target, contents: nil), let output = FileHandle(forWritingAtPath: target) else {
            throw YardError(.unavailable, field: target, "cannot write \(target)")
        }
        do {
            let whole = try copy(from: source, into: output, target: target)
            try output.close()
            if !whole { try? fm.removeItem(atPath: target) }
            return whole
        } catch {
            try? output.close()
            try? fm.removeItem(atPath: target)
            throw error
        }
    }

    /// Appends all of `source` to `output` (which is writing `target`).
    /// Returns false when the source changed during the copy.
    public static func copy(from source: String, into output: FileHandle, target: String) throws -> Bool {
        let before = try stamp(source)
        guard let input = FileHandle(forReadingAtPath: source) else {
            throw YardError(.notFound, field: source, "cannot read \(source)")
        }
        defer { try? input.close() }
        do {
            while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
                try output.write(contentsOf: chunk)
            }
        } catch {
            throw YardError(.unavailable, field: target, "cannot copy \(source) to \(target): \(error.localizedDescription)")
        }
        return try stamp(source) == before
    }

    /// Size and modification time.
    static func stamp(_ path: String) throws -> [String] {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw YardError(.notFound, field: path, "cannot read \(path)")
        }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
        return [String(size), String(modified)]
    }
}
