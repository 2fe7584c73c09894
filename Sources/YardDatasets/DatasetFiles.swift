import Foundation
import YardDomain

/// The files of a local dataset, listed before the engine starts: a
/// detection dataset is its data.yaml plus the folder its `path:` names
/// (else the YAML's folder); a classification dataset is its folder.
/// A symlink whose target lies outside that folder is refused with the file
/// named, unless the service allows it (`--allow-dataset-symlinks`): a
/// dataset must not be a way to read the rest of the machine.
public struct DatasetFiles: Sendable {
    /// The dataset's YAML, when it is one.
    public var yaml: String?
    public var root: String
    /// Paths relative to `root`, sorted; Ultralytics' `.cache` files left out.
    public var files: [String]

    /// Every regular file under `root` (relative, sorted), with the same
    /// symlink rule; `field` names the input in an error.
    public static func list(root: String, allowExternalSymlinks: Bool, field: String = "source") throws(YardError) -> [String] {
        var scan = DatasetFiles(yaml: nil, root: root, files: [])
        let realRoot = realPath(root) ?? root
        var visited: Set<String> = [realRoot]
        try scan.walk(relative: "", realRoot: realRoot, allowExternal: allowExternalSymlinks, field: field, visited: &visited)
        scan.files.sort()
        return scan.files
    }

    /// Nil when `data` does not exist (Ultralytics reports that itself).
    public static func scan(data: String, allowExternalSymlinks: Bool) throws(YardError) -> DatasetFiles? {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: data, isDirectory: &isDirectory) else { return nil }
        var yaml: String?
        let root: String
        if isDirectory.boolValue {
            root = data
        } else {
            yaml = data
            let folder = (data as NSString).deletingLastPathComponent
            let text = fm.contents(atPath: data).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let document = try? JobConfigParser.decodeDocument(text)
            if let path = document?["path"]?.stringValue, !path.isEmpty {
                root = path.hasPrefix("/") ? path : URL(fileURLWithPath: folder).appendingPathComponent(path).standardizedFileURL.path
            } else {
                root = folder
            }
        }
        var scan = DatasetFiles(yaml: yaml, root: root, files: [])
        let realRoot = realPath(root) ?? root
        var visited: Set<String> = [realRoot]
        try scan.walk(relative: "", realRoot: realRoot, allowExternal: allowExternalSymlinks, visited: &visited)
        scan.files.sort()
        return scan
    }

    private mutating func walk(relative: String, realRoot: String, allowExternal: Bool, field: String = "train.data", visited: inout Set<String>) throws(YardError) {
        let folder = relative.isEmpty ? root : root + "/" + relative
        // readdir's d_type spares an lstat per file (the listing is on the scanner's path).
        guard let directory = opendir(folder) else { return }
        var entries: [(name: String, type: UInt8)] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            entries.append((name, entry.pointee.d_type))
        }
        closedir(directory)
        entries.sort { $0.name < $1.name }
        for (name, type) in entries {
            let child = relative.isEmpty ? name : relative + "/" + name
            let path = root + "/" + child
            var info = stat()
            var mode: mode_t
            switch Int32(type) {
            case Int32(DT_REG): mode = S_IFREG
            case Int32(DT_DIR): mode = S_IFDIR
            default:
                guard lstat(path, &info) == 0 else { continue }
                mode = info.st_mode & S_IFMT
            }
            if mode == S_IFLNK {
                guard let target = Self.realPath(path) else { continue }  // dangling: Ultralytics skips it
                if !allowExternal, target != realRoot, !target.hasPrefix(realRoot + "/") {
                    throw YardError.invalid(field, "\(path) is a symlink to \(target), outside the dataset folder \(root); copy the file into the dataset, or start the service with --allow-dataset-symlinks")
                }
                guard stat(path, &info) == 0 else { continue }
                mode = info.st_mode & S_IFMT
                if mode == S_IFDIR {
                    guard visited.insert(target).inserted else { continue }  // a loop, or a folder already listed
                }
            }
            if mode == S_IFDIR {
                try walk(relative: child, realRoot: realRoot, allowExternal: allowExternal, field: field, visited: &visited)
            } else if mode == S_IFREG, !name.hasSuffix(".cache") {
                files.append(child)
            }
        }
    }

    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
