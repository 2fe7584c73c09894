import Foundation
import YardDomain

/// What a dataset version will hold, before anything is written: every file
/// of its folder (a source file, or bytes the import made: converted labels,
/// a generated data.yaml), its splits and names. Made from a folder by
/// `DatasetPlan.make`, checked by `DatasetValidator`, stored by `DatasetLibrary`.
public struct DatasetPlan: Sendable {
    public enum Content: Sendable {
        case file(String)
        case bytes([UInt8])
    }

    public struct Entry: Sendable {
        public var relpath: String
        public var content: Content
    }

    public struct Image: Sendable {
        public var relpath: String
        /// The label file that goes with it, when there is one.
        public var label: String?
        /// Classification: the index of its class folder.
        public var classIndex: Int?
    }

    public struct Split: Sendable {
        public var name: String
        public var images: [Image]
    }

    public var format: String
    public var task: String
    public var names: [String]
    /// Values per keypoint row beyond the box (pose datasets' `kpt_shape`).
    public var keypoints: Int?
    /// Sorted by relpath.
    public var entries: [Entry]
    public var splits: [Split]
    /// Label files no image claims.
    public var orphanLabels: [String]
    /// The dataset YAML the version's jobs read (with `path:` set to the
    /// stored folder); nil for a classification folder.
    public var yamlDocument: [String: JSONValue]?
    public var notes: [String]
    /// Problems found while converting (COCO's crowd, bad and empty boxes).
    public var problems: [DatasetProblem]

    public struct Options: Sendable {
        /// yolo, flat, coco or classify; nil: detected.
        public var format: String?
        /// train, val, test fractions for a folder without splits.
        public var ratios: [Double]
        public var seed: UInt64
        /// Class names for a flat folder without classes.txt.
        public var names: [String]?
        public var allowExternalSymlinks: Bool
        /// The folders a dataset must lie in, as real paths (`--dataset-root`,
        /// or the folder a ZIP was unpacked in); nil: anywhere. A YAML's
        /// `path:` and every split must resolve inside one, after symlinks.
        public var roots: [String]?

        public init(format: String? = nil, ratios: [Double] = [0.8, 0.1, 0.1], seed: UInt64 = 0, names: [String]? = nil,
                    allowExternalSymlinks: Bool = false, roots: [String]? = nil) {
            self.format = format
            self.ratios = ratios
            self.seed = seed
            self.names = names
            self.allowExternalSymlinks = allowExternalSymlinks
            self.roots = roots
        }

        public static func parseRatios(_ text: String) throws(YardError) -> [Double] {
            let values = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard (2...3).contains(values.count), values.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                throw YardError.invalid("split", "\"\(text)\" must be 2 or 3 fractions for train,val[,test], e.g. 0.8,0.1,0.1")
            }
            let numbers = values.map { $0! }
            let sum = numbers.reduce(0, +)
            guard abs(sum - 1) < 1e-6, numbers[0] > 0, numbers[1] > 0 else {
                throw YardError.invalid("split", "\"\(text)\": train and val must be above 0 and the fractions must add up to 1 (they add up to \(sum))")
            }
            return numbers.count == 2 ? numbers + [0] : numbers
        }
    }

    /// The formats a source may be read as (`--format`).
    public static let formats = ["yolo", "flat", "coco", "classify"]

    public static func checkFormat(_ format: String?) throws(YardError) {
        if let format, !formats.contains(format) {
            throw YardError.invalid("format", "\"\(format.prefix(20))\" must be \(formats.dropLast().joined(separator: ", ")) or \(formats.last!)")
        }
    }

    /// Reads a dataset folder, a dataset YAML or a COCO JSON file.
    public static func make(source: String, options: Options) throws(YardError) -> DatasetPlan {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: source, isDirectory: &isDirectory) else {
            throw YardError(.notFound, field: "source", "\(source) does not exist; give a dataset folder, its data.yaml, a COCO JSON file or a ZIP of one")
        }
        try checkFormat(options.format)
        if !isDirectory.boolValue {
            if source.hasSuffix(".json") { return try COCOImport.plan(jsons: [source], root: (source as NSString).deletingLastPathComponent, options: options) }
            if source.hasSuffix(".yaml") || source.hasSuffix(".yml") { return try yolo(yaml: source, options: options) }
            throw YardError.invalid("source", "\(source) is a file but not a dataset YAML, a COCO .json or a .zip")
        }
        let root = URL(fileURLWithPath: source).standardizedFileURL.path
        let top = (try? fm.contentsOfDirectory(atPath: root).sorted()) ?? []
        let format = options.format ?? detect(root: root, top: top)
        switch format {
        case "yolo":
            let yamls = top.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            guard let yaml = yamls.first(where: { $0 == "data.yaml" }) ?? (yamls.count == 1 ? yamls.first : nil) else {
                throw YardError.invalid("source", "\(root) has \(yamls.isEmpty ? "no" : "several") dataset YAML files at its top; name the one to use (… \(root)/data.yaml)")
            }
            return try self.yolo(yaml: root + "/" + yaml, options: options, folder: root)
        case "coco":
            let jsons = cocoFiles(root: root, top: top)
            guard !jsons.isEmpty else { throw YardError.invalid("source", "\(root) has no COCO JSON (at its top or in annotations/)") }
            return try COCOImport.plan(jsons: jsons, root: root, options: options)
        case "classify":
            return try classify(root: root, options: options)
        default:
            return try flat(root: root, options: options)
        }
    }

    static func detect(root: String, top: [String]) -> String {
        if top.contains(where: { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }) { return "yolo" }
        if !cocoFiles(root: root, top: top).isEmpty { return "coco" }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: root + "/train", isDirectory: &isDirectory), isDirectory.boolValue,
           let children = try? FileManager.default.contentsOfDirectory(atPath: root + "/train"),
           !children.isEmpty, children.allSatisfy({ isFolder(root + "/train/" + $0) }), !children.contains("images") {
            return "classify"
        }
        return "flat"
    }

    static func cocoFiles(root: String, top: [String]) -> [String] {
        var found = top.filter { $0.hasSuffix(".json") }.map { root + "/" + $0 }
        if let inner = try? FileManager.default.contentsOfDirectory(atPath: root + "/annotations") {
            found += inner.filter { $0.hasSuffix(".json") }.sorted().map { root + "/annotations/" + $0 }
        }
        return found.filter(COCOImport.looksLikeCOCO)
    }

    /// Whether a real path is one of `roots` or lies in one.
    static func isInside(_ path: String, _ roots: [String]) -> Bool {
        roots.contains { path == $0 || path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
    }

    public static func isFolder(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    static func isImage(_ relpath: String) -> Bool {
        ImageProbe.extensions.contains(pathExtension(relpath))
    }

    /// The lowercased extension of a path's last component ("" if none).
    static func pathExtension(_ path: String) -> String {
        let bytes = path.utf8
        guard let dot = bytes.lastIndex(of: UInt8(ascii: ".")) else { return "" }
        if let slash = bytes.lastIndex(of: UInt8(ascii: "/")), slash > dot { return "" }
        return String(path[path.index(after: dot)...]).lowercased()
    }

    /// Ultralytics' `img2label_paths`: the last `/images/` becomes
    /// `/labels/`, the extension `.txt`.
    static func labelPath(for image: String) -> String {
        var bytes = Array(("/" + image).utf8)
        let marker = Array("/images/".utf8)
        if bytes.count >= marker.count {
            for start in stride(from: bytes.count - marker.count, through: 0, by: -1) where bytes[start..<(start + marker.count)].elementsEqual(marker) {
                bytes.replaceSubrange(start..<(start + marker.count), with: Array("/labels/".utf8))
                break
            }
        }
        let slash = bytes.lastIndex(of: UInt8(ascii: "/")) ?? 0
        if let dot = bytes.lastIndex(of: UInt8(ascii: ".")), dot > slash + 1 { bytes.removeSubrange(dot...) }
        return String(decoding: bytes.dropFirst(), as: UTF8.self) + ".txt"
    }

    // MARK: YOLO

    /// `folder`: the dataset is that folder (given as the source), whatever
    /// the YAML's `path:` says (a copied dataset often keeps the old one).
    static func yolo(yaml: String, options: Options, folder given: String? = nil) throws(YardError) -> DatasetPlan {
        let text = FileManager.default.contents(atPath: yaml).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let document: [String: JSONValue]
        do { document = try JobConfigParser.decodeDocument(text) } catch {
            throw YardError.invalid(yaml, "not a readable dataset YAML: \(error.message)")
        }
        let folder = (yaml as NSString).deletingLastPathComponent
        var root = folder
        if let path = document["path"]?.stringValue, !path.isEmpty {
            root = path.hasPrefix("/") ? path : URL(fileURLWithPath: folder).appendingPathComponent(path).standardizedFileURL.path
        }
        root = URL(fileURLWithPath: root).standardizedFileURL.path
        var notes: [String] = []
        if let given, root != given {
            notes.append("data.yaml's path: \(Excerpt.of(document["path"]?.stringValue ?? "", limit: 80)) was not used: the dataset is the folder given")
            root = given
        }
        // Where path: leads, after `..` and symlinks: inside the roots, or nothing is read.
        if let roots = options.roots, !isInside(DatasetFiles.realPath(root) ?? root, roots) {
            guard given == nil else {
                throw YardError.invalid("source", "\(root) is outside the folders this server adds datasets from; move it under one")
            }
            let value = Excerpt.of(document["path"]?.stringValue ?? ".", limit: 80)
            throw YardError.invalid("\(yaml): path", "\(value) leads outside the folders this server adds datasets from; keep the dataset under a --dataset-root folder and path: inside it (or leave path: out)")
        }
        guard isFolder(root) else { throw YardError.invalid("\(yaml): path", "\(root) is not a folder") }
        guard document["train"] != nil, document["val"] != nil else {
            throw YardError.invalid(yaml, "needs train: and val: (folders of images, relative to path:)")
        }
        // Every split, before a file is listed: inside the dataset folder as
        // written, and (after symlinks) inside the roots, or the folder itself
        // unless the service allows symlinks out of it.
        let realRoot = DatasetFiles.realPath(root) ?? root
        let allowed = options.roots ?? (options.allowExternalSymlinks ? nil : [realRoot])
        var resolved: [String: [String]] = [:]
        for key in ["train", "val", "test"] {
            guard let value = document[key], value != .null else { continue }
            for item in value.arrayValue?.compactMap(\.stringValue) ?? value.stringValue.map({ [$0] }) ?? [] {
                let path = item.hasPrefix("/") ? URL(fileURLWithPath: item).standardizedFileURL.path
                    : URL(fileURLWithPath: root).appendingPathComponent(item).standardizedFileURL.path
                guard path == root || path.hasPrefix(root + "/") else {
                    throw YardError.invalid("\(yaml): \(key)", "\(Excerpt.of(item, limit: 80)) lies outside the dataset folder \(root); keep every split inside it")
                }
                if let allowed, let real = DatasetFiles.realPath(path), !isInside(real, allowed) {
                    throw YardError.invalid("\(yaml): \(key)", options.roots != nil
                        ? "\(Excerpt.of(item, limit: 80)) leads through a symlink outside the folders this server adds datasets from; keep every split inside the dataset folder"
                        : "\(Excerpt.of(item, limit: 80)) leads through a symlink outside the dataset folder \(root); copy it into the dataset, or start the service with --allow-dataset-symlinks")
                }
                resolved[key, default: []].append(String(path.dropFirst(root.count).drop(while: { $0 == "/" })))
            }
        }
        let files = try DatasetFiles.list(root: root, allowExternalSymlinks: options.allowExternalSymlinks)
        let fileSet = Set(files)
        var entries = files.map { Entry(relpath: $0, content: .file(root + "/" + $0)) }
        let yamlInside = yaml.hasPrefix(root + "/")
        if !yamlInside {
            guard !fileSet.contains("data.yaml") else {
                throw YardError.invalid("source", "\(yaml) lies outside its dataset folder \(root), which has a data.yaml of its own; give that one")
            }
            entries.append(Entry(relpath: "data.yaml", content: .file(yaml)))
            entries.sort { DVCHash.pathOrder($0.relpath, $1.relpath) }
        }
        let names = try parseNames(document, file: yaml)
        let keypoints = try keypointColumns(document["kpt_shape"], file: yaml)

        var splits: [Split] = []
        var claimed = Set<String>()
        var job = document
        job["download"] = nil
        for key in ["train", "val", "test"] {
            guard let value = document[key], value != .null else { continue }
            var relative: [String] = []
            var images: [String] = []
            for path in resolved[key] ?? [] {
                relative.append(path.isEmpty ? "." : path)
                if path.hasSuffix(".txt"), fileSet.contains(path) {
                    claimed.insert(path)
                    let list = FileManager.default.contents(atPath: root + "/" + path).map { String(decoding: $0, as: UTF8.self) } ?? ""
                    for line in list.split(whereSeparator: \.isNewline) {
                        let listed = line.trimmingCharacters(in: .whitespaces)
                        var entry = listed.hasPrefix("/") ? listed : URL(fileURLWithPath: root).appendingPathComponent(listed).standardizedFileURL.path
                        guard entry.hasPrefix(root + "/") else {
                            throw YardError.invalid("\(root)/\(path)", "lists \(Excerpt.of(listed, limit: 40)), outside the dataset folder; list images inside it")
                        }
                        entry = String(entry.dropFirst(root.count + 1))
                        if fileSet.contains(entry) { images.append(entry) }
                    }
                } else {
                    let prefix = path.isEmpty ? "" : path + "/"
                    images += files.filter { $0.hasPrefix(prefix) && isImage($0) }
                }
            }
            job[key] = relative.count == 1 ? .string(relative[0]) : .array(relative.map(JSONValue.string))
            let split = Split(name: key, images: images.map { image in
                let label = labelPath(for: image)
                if fileSet.contains(label) { claimed.insert(label); return Image(relpath: image, label: label) }
                return Image(relpath: image, label: nil)
            })
            splits.append(split)
        }
        let yamlRel = yamlInside ? String(yaml.dropFirst(root.count + 1)) : "data.yaml"
        let orphans = files.filter { $0.hasSuffix(".txt") && !claimed.contains($0) && $0 != yamlRel
            && $0.split(separator: "/").contains("labels") }
        return DatasetPlan(format: "yolo", task: "detect", names: names, keypoints: keypoints, entries: entries, splits: splits,
                           orphanLabels: orphans, yamlDocument: job, notes: notes, problems: [])
    }

    /// The most classes a dataset may have (Ultralytics' own datasets have at most a few thousand).
    static let maxClasses = 10_000

    /// The label columns a pose dataset's `kpt_shape` adds: `[keypoints, 2 or 3]`
    /// (x, y and, with 3, visibility), as Ultralytics reads it. Anything else
    /// would make every label a problem, or overflow: refused by name.
    static func keypointColumns(_ value: JSONValue?, file: String) throws(YardError) -> Int? {
        guard let value, value != .null else { return nil }
        guard let shape = value.arrayValue?.compactMap(\.intValue), shape.count == 2, value.arrayValue?.count == 2,
              (1...1_000).contains(shape[0]), (2...3).contains(shape[1]) else {
            throw YardError.invalid("\(file): kpt_shape", "is not a keypoint shape Ultralytics reads; give [keypoints, 2 or 3], e.g. [17, 3] for COCO pose (at most 1,000 keypoints)")
        }
        return shape[0] * shape[1]
    }

    static func parseNames(_ document: [String: JSONValue], file: String) throws(YardError) -> [String] {
        if let list = document["names"]?.arrayValue {
            return list.map { $0.stringValue ?? "\($0)" }
        }
        if let map = document["names"]?.objectValue {
            var names: [Int: String] = [:]
            for (key, value) in map {
                guard let index = Int(key), index >= 0 else { throw YardError.invalid("\(file): names", "key \(Excerpt.of(key)) is not a class index") }
                names[index] = value.stringValue ?? "\(value)"
            }
            guard names.count == (names.keys.max() ?? -1) + 1 else {
                throw YardError.invalid("\(file): names", "class indices must run 0..\(names.count - 1) without gaps")
            }
            return (0..<names.count).map { names[$0]! }
        }
        if let nc = document["nc"]?.intValue, nc > 0 {
            // Names are made for each class: `nc: 4294967296` would make four billion.
            guard nc <= maxClasses else { throw YardError.invalid("\(file): nc", "\(nc) classes; at most \(maxClasses) (list the names instead)") }
            return (0..<nc).map { "class\($0)" }
        }
        throw YardError.invalid("\(file): names", "missing; list the class names (names: [cat, dog])")
    }

    // MARK: Classification

    static func classify(root: String, options: Options) throws(YardError) -> DatasetPlan {
        let files = try DatasetFiles.list(root: root, allowExternalSymlinks: options.allowExternalSymlinks)
        let fm = FileManager.default
        let classes = ((try? fm.contentsOfDirectory(atPath: root + "/train")) ?? []).filter { isFolder(root + "/train/" + $0) }.sorted()
        guard !classes.isEmpty else { throw YardError.invalid("source", "\(root)/train has no class folders") }
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        var splits: [Split] = []
        for name in ["train", "val", "test"] where isFolder(root + "/" + name) {
            let images = files.filter { $0.hasPrefix(name + "/") && isImage($0) }.map { path -> Image in
                let parts = path.split(separator: "/")
                return Image(relpath: path, label: nil, classIndex: parts.count >= 3 ? index[String(parts[1])] : nil)
            }
            splits.append(Split(name: name, images: images))
        }
        return DatasetPlan(format: "classify", task: "classify", names: classes, keypoints: nil,
                           entries: files.map { Entry(relpath: $0, content: .file(root + "/" + $0)) },
                           splits: splits, orphanLabels: [], yamlDocument: nil, notes: [], problems: [])
    }

    // MARK: Flat folder

    /// Images with their labels beside them (or in a parallel labels/
    /// folder), no splits: split with the seed and ratios into the YOLO layout.
    static func flat(root: String, options: Options) throws(YardError) -> DatasetPlan {
        let files = try DatasetFiles.list(root: root, allowExternalSymlinks: options.allowExternalSymlinks)
        let fileSet = Set(files)
        let images = files.filter(isImage)
        guard !images.isEmpty else {
            throw YardError.invalid("source", "\(root) holds no images (\(ImageProbe.extensions.sorted().joined(separator: ", "))) and no dataset YAML or COCO JSON")
        }
        var claimed = Set<String>()
        let pairs: [(image: String, label: String?)] = images.map { image in
            for candidate in [labelPath(for: image), (image as NSString).deletingPathExtension + ".txt"] where fileSet.contains(candidate) {
                claimed.insert(candidate)
                return (image, candidate)
            }
            return (image, nil)
        }
        var notes: [String] = []
        var names = options.names
        if names == nil, let file = ["classes.txt", "classes.names", "obj.names"].first(where: fileSet.contains) {
            claimed.insert(file)
            let text = FileManager.default.contents(atPath: root + "/" + file).map { String(decoding: $0, as: UTF8.self) } ?? ""
            names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            notes.append("class names from \(file)")
        }
        if names == nil {
            // No names given: one per class id the labels use.
            var highest = -1
            for pair in pairs {
                guard let label = pair.label, let data = FileManager.default.contents(atPath: root + "/" + label) else { continue }
                for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
                    if let first = line.split(separator: " ").first, let id = Int(first), id < 10_000 { highest = max(highest, id) }
                }
            }
            guard highest >= 0 else { throw YardError.invalid("names", "\(root) has no classes.txt and no labelled image; give the class names (--names cat,dog)") }
            names = (0...highest).map { "class\($0)" }
            notes.append("no classes.txt: classes named class0..class\(highest) (give --names to name them)")
        }
        let assignment = SeededSplit.assign(count: pairs.count, ratios: options.ratios, seed: options.seed)
        let splitNames = ["train", "val", "test"]
        var entries: [Entry] = []
        var splits = splitNames.map { Split(name: $0, images: []) }
        for (i, pair) in pairs.enumerated() {
            let split = splitNames[assignment[i]]
            var inner = pair.image
            if inner.hasPrefix("images/") { inner.removeFirst("images/".count) }
            let image = "images/\(split)/\(inner)"
            entries.append(Entry(relpath: image, content: .file(root + "/" + pair.image)))
            var label: String?
            if let source = pair.label {
                label = labelPath(for: image)
                entries.append(Entry(relpath: label!, content: .file(root + "/" + source)))
            }
            splits[assignment[i]].images.append(Image(relpath: image, label: label))
        }
        splits.removeAll { $0.images.isEmpty && $0.name == "test" }
        let counts = splits.map { "\($0.name) \($0.images.count)" }.joined(separator: ", ")
        notes.append("split with seed \(options.seed) and ratios \(options.ratios.map { String($0) }.joined(separator: "/")): \(counts)")
        let yaml = generatedYAML(splits: splits.map(\.name), names: names!, comment: "a flat folder split by Trainyard (seed \(options.seed))")
        entries.append(Entry(relpath: "data.yaml", content: .bytes(Array(yaml.utf8))))
        entries.sort { DVCHash.pathOrder($0.relpath, $1.relpath) }
        let orphans = files.filter { $0.hasSuffix(".txt") && !claimed.contains($0) }
        if !orphans.isEmpty { notes.append("\(orphans.count) .txt files without an image were left out") }
        return DatasetPlan(format: "flat", task: "detect", names: names!, keypoints: nil, entries: entries, splits: splits,
                           orphanLabels: orphans, yamlDocument: generatedDocument(splits: splits.map(\.name), names: names!), notes: notes, problems: [])
    }

    static func generatedDocument(splits: [String], names: [String]) -> [String: JSONValue] {
        var document: [String: JSONValue] = ["names": .object(Dictionary(uniqueKeysWithValues: names.enumerated().map { (String($0), .string($1)) }))]
        for split in splits { document[split] = .string("images/\(split)") }
        return document
    }

    /// A data.yaml in Ultralytics' own form; names are JSON strings (valid YAML).
    static func generatedYAML(splits: [String], names: [String], comment: String) -> String {
        var text = "# \(comment)\n"
        for split in splits { text += "\(split): images/\(split)\n" }
        text += "names:\n"
        for (i, name) in names.enumerated() { text += "  \(i): \(JSONString.quote(name, JSONString.python))\n" }
        return text
    }
}

/// A reproducible split: SplitMix64 seeded with `seed` shuffles the indices
/// (Fisher-Yates), then the first fractions go to train, val, test. Val gets
/// at least one item when there are two or more.
public enum SeededSplit {
    public static func assign(count: Int, ratios: [Double], seed: UInt64) -> [Int] {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var order = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                let j = Int(next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        var train = Int((Double(count) * ratios[0]).rounded())
        var val = Int((Double(count) * ratios[1]).rounded())
        if count >= 2, val == 0 { val = 1 }
        train = min(train, count - val)
        if train == 0, count >= 2 { train = 1; val = min(val, count - 1) }
        var result = [Int](repeating: 2, count: count)
        for (position, index) in order.enumerated() {
            result[index] = position < train ? 0 : position < train + val ? 1 : (ratios.count > 2 && ratios[2] > 0 ? 2 : 1)
        }
        return result
    }
}
