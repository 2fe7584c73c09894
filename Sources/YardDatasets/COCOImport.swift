import Foundation
import YardDomain

/// COCO detection JSON converted to the YOLO layout as Ultralytics'
/// `convert_coco` does: categories sorted by id become classes 0..n-1,
/// boxes `[x, y, w, h]` in pixels become normalised centre boxes. Crowd
/// boxes, boxes of unknown categories or images, zero-area boxes and boxes
/// wholly outside their image are left out and reported; boxes partly
/// outside are clipped and reported.
enum COCOImport {
    struct File: Decodable {
        struct Image: Decodable { var id: Int; var file_name: String; var width: Double?; var height: Double? }
        struct Annotation: Decodable { var id: Int?; var image_id: Int; var category_id: Int; var bbox: [Double]?; var iscrowd: Int? }
        struct Category: Decodable { var id: Int; var name: String }
        var images: [Image]
        var annotations: [Annotation]?
        var categories: [Category]
    }

    /// The largest image side taken, in pixels (larger is no photograph).
    static let maxSide: Double = 1_000_000

    static func looksLikeCOCO(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path), let head = try? handle.read(upToCount: 1 << 20) else { return false }
        try? handle.close()
        let text = String(decoding: head, as: UTF8.self)
        return text.contains("\"images\"") && text.contains("\"categories\"")
    }

    static func plan(jsons: [String], root: String, options: DatasetPlan.Options) throws(YardError) -> DatasetPlan {
        let files = try DatasetFiles.list(root: root, allowExternalSymlinks: options.allowExternalSymlinks)
        var byName: [String: [String]] = [:]
        for file in files where DatasetPlan.isImage(file) { byName[(file as NSString).lastPathComponent, default: []].append(file) }
        let fileSet = Set(files)

        var parsed: [(path: String, file: File)] = []
        for json in jsons {
            guard let data = FileManager.default.contents(atPath: json) else { throw YardError(.unavailable, field: json, "cannot read \(json)") }
            do { parsed.append((json, try JSONDecoder().decode(File.self, from: data))) } catch {
                throw YardError.invalid(json, "not a COCO detection file (\(Self.describe(error)))")
            }
        }
        // One class list for all files: the union of categories by id.
        var categories: [Int: String] = [:]
        for (_, file) in parsed { for category in file.categories { categories[category.id] = category.name } }
        guard !categories.isEmpty else { throw YardError.invalid(jsons[0], "has no categories") }
        let ids = categories.keys.sorted()
        let classOf = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        let names = ids.map { categories[$0]! }

        var problems: [DatasetProblem] = []
        var entries: [DatasetPlan.Entry] = []
        var splits: [DatasetPlan.Split] = []
        var notes = ["converted from COCO (\(parsed.map { ($0.path as NSString).lastPathComponent }.joined(separator: ", "))): categories \(ids.map(String.init).joined(separator: ",")) became classes 0-\(ids.count - 1)"]
        var used = Set<String>()
        for (index, (json, file)) in parsed.enumerated() {
            let jsonName = (json as NSString).lastPathComponent
            let relJSON = json.hasPrefix(root + "/") ? String(json.dropFirst(root.count + 1)) : jsonName
            entries.append(DatasetPlan.Entry(relpath: "annotations/" + jsonName, content: .file(json)))
            var lines: [Int: [String]] = [:]
            let images = Dictionary(file.images.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            for (n, annotation) in (file.annotations ?? []).enumerated() {
                let label = "annotation \(annotation.id.map(String.init) ?? "#\(n)")"
                if annotation.iscrowd == 1 {
                    problems.append(DatasetProblem(.warning, "crowd_box", file: relJSON, "\(label): a crowd box (iscrowd 1), left out as Ultralytics does")); continue
                }
                guard let cls = classOf[annotation.category_id] else {
                    problems.append(DatasetProblem(.error, "class_out_of_range", file: relJSON, "\(label): category_id \(annotation.category_id) is not among the categories; left out")); continue
                }
                guard let image = images[annotation.image_id] else {
                    problems.append(DatasetProblem(.error, "bad_label", file: relJSON, "\(label): image_id \(annotation.image_id) is not among the images; left out")); continue
                }
                guard let box = annotation.bbox, box.count == 4, let width = image.width, let height = image.height, width > 0, height > 0 else {
                    problems.append(DatasetProblem(.error, "bad_label", file: relJSON, "\(label): needs a bbox [x, y, w, h] and its image's width and height; left out")); continue
                }
                // Range-checked before any arithmetic or integer conversion: a width of 1e19 once stopped the server.
                guard width.isFinite, height.isFinite, width <= Self.maxSide, height <= Self.maxSide else {
                    problems.append(DatasetProblem(.error, "bad_label", file: relJSON, "\(label): image \(image.id) has width \(width) and height \(height); each must be a number of pixels up to \(Int(Self.maxSide)); left out")); continue
                }
                guard box.allSatisfy({ $0.isFinite && abs($0) <= Self.maxSide * 4 }) else {
                    problems.append(DatasetProblem(.error, "bad_label", file: relJSON, "\(label): bbox \(box) holds a number that is no pixel coordinate; left out")); continue
                }
                guard box[2] > 0, box[3] > 0 else {
                    problems.append(DatasetProblem(.warning, "degenerate_box", file: relJSON, "\(label): zero-area box \(box); left out")); continue
                }
                let x0 = max(0, box[0]), y0 = max(0, box[1]), x1 = min(width, box[0] + box[2]), y1 = min(height, box[1] + box[3])
                guard x1 > x0, y1 > y0 else {
                    problems.append(DatasetProblem(.error, "out_of_range_box", file: relJSON, "\(label): box \(box) lies outside its \(Int(width))x\(Int(height)) image; left out")); continue
                }
                if x0 != box[0] || y0 != box[1] || x1 != box[0] + box[2] || y1 != box[1] + box[3] {
                    problems.append(DatasetProblem(.warning, "out_of_range_box", file: relJSON, "\(label): box \(box) runs past its \(Int(width))x\(Int(height)) image; clipped"))
                }
                let values = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
                lines[image.id, default: []].append("\(cls) " + values.map { String(format: "%.6f", $0) }.joined(separator: " "))
            }
            // Which split: the file's name, else a seeded split of one file.
            let lower = jsonName.lowercased()
            let named = ["train", "val", "test"].first { lower.contains($0) }
            let assignment: [Int]? = (named == nil && parsed.count == 1)
                ? SeededSplit.assign(count: file.images.count, ratios: options.ratios, seed: options.seed) : nil
            if assignment != nil { notes.append("split with seed \(options.seed) and ratios \(options.ratios.map { String($0) }.joined(separator: "/"))") }
            var fileSplits: [String: [DatasetPlan.Image]] = [:]
            for (i, image) in file.images.enumerated() {
                guard let source = locate(image.file_name, json: json, root: root, fileSet: fileSet, byName: byName) else {
                    problems.append(DatasetProblem(.error, "missing_image", file: relJSON, "image \(image.id): \"\(Excerpt.of(image.file_name, limit: 120))\" is not in \(root)")); continue
                }
                let split = assignment.map { ["train", "val", "test"][$0[i]] } ?? named ?? "split\(index)"
                let base = (image.file_name as NSString).lastPathComponent
                let relImage = "images/\(split)/\(base)"
                guard used.insert(relImage).inserted else {
                    problems.append(DatasetProblem(.error, "duplicate_image", file: relJSON, "image \(image.id): a second \(base) in \(split); left out")); continue
                }
                entries.append(DatasetPlan.Entry(relpath: relImage, content: .file(root + "/" + source)))
                var label: String?
                if let rows = lines[image.id] {
                    label = DatasetPlan.labelPath(for: relImage)
                    entries.append(DatasetPlan.Entry(relpath: label!, content: .bytes(Array((rows.joined(separator: "\n") + "\n").utf8))))
                }
                fileSplits[split, default: []].append(DatasetPlan.Image(relpath: relImage, label: label))
            }
            for name in fileSplits.keys.sorted() {
                if let existing = splits.firstIndex(where: { $0.name == name }) { splits[existing].images += fileSplits[name]! }
                else { splits.append(DatasetPlan.Split(name: name, images: fileSplits[name]!)) }
            }
        }
        guard splits.contains(where: { !$0.images.isEmpty }) else {
            throw YardError.invalid("source", "none of the images the COCO files list were found in \(root) (looked beside the JSON, in images/ and by file name)")
        }
        let order = ["train": 0, "val": 1, "test": 2]
        splits.sort { (order[$0.name] ?? 3, $0.name) < (order[$1.name] ?? 3, $1.name) }
        guard splits.contains(where: { $0.name == "train" }), splits.contains(where: { $0.name == "val" }) else {
            throw YardError.invalid("source", "the COCO files give splits \(splits.map(\.name)); name them *train*.json and *val*.json, or give one file to split")
        }
        let yaml = DatasetPlan.generatedYAML(splits: splits.map(\.name), names: names, comment: "converted from COCO by Trainyard")
        entries.append(DatasetPlan.Entry(relpath: "data.yaml", content: .bytes(Array(yaml.utf8))))
        entries.sort { DVCHash.pathOrder($0.relpath, $1.relpath) }
        return DatasetPlan(format: "coco", task: "detect", names: names, keypoints: nil, entries: entries, splits: splits, orphanLabels: [],
                           yamlDocument: DatasetPlan.generatedDocument(splits: splits.map(\.name), names: names), notes: notes, problems: problems)
    }

    /// `file_name` relative to the JSON's folder, the dataset folder or its
    /// images/, else the one image of that name anywhere in the folder.
    static func locate(_ name: String, json: String, root: String, fileSet: Set<String>, byName: [String: [String]]) -> String? {
        guard !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else { return nil }
        let jsonFolder = (json as NSString).deletingLastPathComponent
        var candidates = [name, "images/" + name]
        if jsonFolder.hasPrefix(root + "/") {
            let relFolder = String(jsonFolder.dropFirst(root.count + 1))
            candidates.insert(relFolder + "/" + name, at: 0)
            candidates.append(((relFolder as NSString).deletingLastPathComponent as NSString).appendingPathComponent("images/" + name))
        }
        if let found = candidates.first(where: fileSet.contains) { return found }
        let matches = byName[(name as NSString).lastPathComponent] ?? []
        return matches.count == 1 ? matches[0] : nil
    }

    static func describe(_ error: any Error) -> String {
        if case DecodingError.keyNotFound(let key, _) = error { return "no \"\(key.stringValue)\"" }
        if case DecodingError.typeMismatch(_, let context) = error { return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))" }
        return "not JSON"
    }
}
