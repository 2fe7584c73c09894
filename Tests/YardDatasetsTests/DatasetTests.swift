import Foundation
import Testing
import YardArtifacts
import YardDomain
import YardTestSupport
@testable import YardDatasets

func jpegBytes(width: Int = 20, height: Int = 16, end: Bool = true, salt: UInt8 = 0) -> [UInt8] {
    TestImages.jpeg(width: width, height: height, end: end, salt: salt)
}

func write(_ bytes: [UInt8], _ path: String) throws { try TestImages.write(bytes, path) }

/// A YOLO dataset: 4 train and 2 val images, labels for all but one.
func yoloDataset(_ dir: TemporaryDirectory) throws -> String { try TestImages.yoloDataset(in: dir) }

@Suite struct DVCHashTests {
    /// The tree and the value `dvc add` (DVC 3.67.1) printed for it: entries
    /// sorted as strings (`a-b/c` before `a/b`), non-ASCII escaped, CRLF kept.
    @Test func matchesDVCOnATrickyTree() throws {
        let dir = try TemporaryDirectory("dvc")
        defer { dir.remove() }
        try dir.write("d/a/b", "x")
        try dir.write("d/a-b/c", "w")
        try dir.write("d/é.txt", "z\r\n")
        try dir.write("d/sub/q\"uo te.txt", "q\"\\")
        try dir.write("d/empty", "")
        let files = try DatasetFiles.list(root: dir.file("d"), allowExternalSymlinks: false)
        let entries = try files.map { ($0, try FileDigest.read(dir.file("d/" + $0), keep: 0, cache: nil).md5) }
        #expect(DVCHash.directory(entries) == "7f0fc78903aad3141c5382b66f9e584a.dir")
        #expect(JSONString.quote("é\u{7F}\"", JSONString.python) == "\"\\u00e9\\u007f\\\"\"")
        #expect(JSONString.quote("😀", JSONString.python) == "\"\\ud83d\\ude00\"")
    }

    @Test func hashCacheSkipsUnchangedFilesAndNoticesChanges() throws {
        let dir = try TemporaryDirectory("dvc")
        defer { dir.remove() }
        let file = try dir.write("a.txt", "one")
        let cache = HashCache(path: dir.file("cache.txt"))
        let first = try FileDigest.read(file, keep: 0, cache: cache)
        #expect(!first.cached)
        try cache.save()
        let reloaded = HashCache(path: dir.file("cache.txt"))
        let second = try FileDigest.read(file, keep: 0, cache: reloaded)
        #expect(second.cached && second.md5 == first.md5)
        try "two!".write(toFile: file, atomically: false, encoding: .utf8)
        let third = try FileDigest.read(file, keep: 0, cache: reloaded)
        #expect(!third.cached && third.md5 != first.md5)
    }
}

@Suite struct ProbeAndLabelTests {
    @Test func crcKnownAnswer() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func imageProbe() {
        let good = jpegBytes()
        #expect(ImageProbe.probe(head: good, tail: Array(good.suffix(2)), size: Int64(good.count), ext: "jpg") == .ok(.init(format: "jpeg", width: 20, height: 16)))
        let cut = jpegBytes(end: false)
        guard case .warning(_, let why) = ImageProbe.probe(head: cut, tail: Array(cut.suffix(2)), size: Int64(cut.count), ext: "jpg") else { Issue.record("no warning"); return }
        #expect(why.contains("end marker"))
        let header = Array(good.prefix(12))
        guard case .corrupt(let truncated) = ImageProbe.probe(head: header, tail: Array(header.suffix(2)), size: 12, ext: "jpg") else { Issue.record("not corrupt"); return }
        #expect(truncated.contains("truncated"))
        guard case .corrupt(let small) = ImageProbe.probe(head: jpegBytes(width: 5), tail: [0xFF, 0xD9], size: 60, ext: "jpg") else { Issue.record("not corrupt"); return }
        #expect(small.contains("under 10 pixels"))
        guard case .corrupt(let text) = ImageProbe.probe(head: Array("hello".utf8), tail: [], size: 5, ext: "jpg") else { Issue.record("not corrupt"); return }
        #expect(text.contains("not an image"))
        // PNG: signature, IHDR with its CRC, IEND.
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]
        let ihdr: [UInt8] = Array("IHDR".utf8) + [0, 0, 0, 40, 0, 0, 0, 30, 8, 2, 0, 0, 0]
        let crc = CRC32.checksum(ihdr)
        png += ihdr + [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)]
        png += [0, 0, 0, 0] + Array("IEND".utf8) + [0xAE, 0x42, 0x60, 0x82]
        #expect(ImageProbe.probe(head: png, tail: [], size: Int64(png.count), ext: "png") == .ok(.init(format: "png", width: 40, height: 30)))
        var damaged = png
        damaged[20] = 9
        guard case .corrupt(let crcWhy) = ImageProbe.probe(head: damaged, tail: [], size: Int64(png.count), ext: "png") else { Issue.record("not corrupt"); return }
        #expect(crcWhy.contains("checksum"))
    }

    @Test func labelRowsEachProblemWithItsLine() {
        let text = """
        0 0.5 0.5 0.2 0.2
        0 0.5 0.5 0.2 0.2

        1 0.5 0.5 0 0.3
        0 0.5 1.4 0.2 0.2
        7 0.5 0.5 0.2 0.2
        0 0.5 0.5
        x 0.5 0.5 0.2 0.2
        -1 0.5 0.5 0.2 0.2
        1 0.1 0.1 0.2 0.1 0.2 0.3
        """
        let checked = YOLOLabels.check(Array(text.utf8), file: "labels/a.txt", classCount: 2, keypoints: nil)
        let found = checked.problems.map { "\($0.line!):\($0.kind)" }
        #expect(found == ["2:duplicate_row", "4:degenerate_box", "5:out_of_range_box", "6:class_out_of_range", "7:bad_label", "8:bad_label", "9:bad_label"])
        #expect(checked.rejected)
        #expect(checked.classes == [0, 1])
        #expect(checked.cleaned == ["0 0.5 0.5 0.2 0.2", "1 0.1 0.1 0.2 0.1 0.2 0.3"])
        #expect(checked.problems.first { $0.kind == "class_out_of_range" }!.message.contains("class 7"))
        let clean = YOLOLabels.check(Array("1 0.5 0.5 0.2 0.2\n".utf8), file: "x", classCount: 2, keypoints: nil)
        #expect(!clean.rejected && clean.problems.isEmpty)
    }

    @Test func seededSplitIsReproducibleAndKeepsRatios() throws {
        let a = SeededSplit.assign(count: 100, ratios: [0.8, 0.1, 0.1], seed: 3)
        #expect(a == SeededSplit.assign(count: 100, ratios: [0.8, 0.1, 0.1], seed: 3))
        #expect(a != SeededSplit.assign(count: 100, ratios: [0.8, 0.1, 0.1], seed: 4))
        #expect(a.count { $0 == 0 } == 80 && a.count { $0 == 1 } == 10 && a.count { $0 == 2 } == 10)
        let two = SeededSplit.assign(count: 2, ratios: [0.9, 0.1, 0], seed: 0)
        #expect(two.sorted() == [0, 1])
        #expect(throws: YardError.self) { try DatasetPlan.Options.parseRatios("0.8,0.3") }
        #expect(throws: YardError.self) { try DatasetPlan.Options.parseRatios("1,0") }
        #expect(try DatasetPlan.Options.parseRatios("0.9,0.1") == [0.9, 0.1, 0])
    }

    /// Ultralytics' img2label_paths, spelled out.
    @Test func labelPathsAndExtensions() {
        #expect(DatasetPlan.labelPath(for: "images/train/a.b.jpg") == "labels/train/a.b.txt")
        #expect(DatasetPlan.labelPath(for: "x/images/images/y.png") == "x/images/labels/y.txt")
        #expect(DatasetPlan.labelPath(for: "a.jpg") == "a.txt")
        #expect(DatasetPlan.labelPath(for: "dir.v2/file") == "dir.v2/file.txt")
        #expect(DatasetPlan.labelPath(for: "images/.hidden") == "labels/.hidden.txt")
        #expect(DatasetPlan.pathExtension("a/b.JPG") == "jpg" && DatasetPlan.pathExtension("a.d/b") == "" && DatasetPlan.pathExtension("b") == "")
    }

    @Test func datasetReferences() throws {
        #expect(try DatasetReference.parse("dataset:coco8") == DatasetReference(name: "coco8"))
        #expect(try DatasetReference.parse("dataset:coco8@2").version == "2")
        #expect(try DatasetReference.parse("dataset:coco8@1f0e3a9b").version == "1f0e3a9b")
        for bad in ["dataset:", "dataset:../x", "dataset:a@", "dataset:a@0", "dataset:a@xyz", "dataset:a b"] {
            #expect(throws: YardError.self, "\(bad)") { try DatasetReference.parse(bad) }
        }
    }
}

@Suite struct DatasetImportTests {
    @Test func yoloValidationReportsEachProblemAndFixWritesACleanCopy() throws {
        let dir = try TemporaryDirectory("ds")
        defer { dir.remove() }
        let root = try yoloDataset(dir)
        try write(Array(jpegBytes().prefix(30)), root + "/images/train/broken.jpg")   // corrupt
        try dir.write("yolo/labels/train/broken.txt", "0 0.5 0.5 0.2 0.2\n")
        try write(jpegBytes(salt: 0), root + "/images/val/copy.jpg")                   // same bytes as t0
        try dir.write("yolo/labels/train/t3.txt", "0 0.5 0.5 0.2 0.2\n0 1.5 0.5 0.2 0.2\n") // out of range, line 2
        try dir.write("yolo/labels/val/ghost.txt", "0 0.5 0.5 0.2 0.2\n")              // no image
        let plan = try DatasetPlan.make(source: root, options: .init())
        #expect(plan.format == "yolo" && plan.names == ["square", "disc"])
        let result = try DatasetValidator.run(plan, root: root, cache: nil, threads: 2)
        let problems = result.report.problems.map { "\($0.location) \($0.kind)" }
        #expect(problems.contains("images/train/broken.jpg corrupt_image"))
        #expect(problems.contains("labels/train/t3.txt:2 out_of_range_box"))
        #expect(problems.contains("images/val/copy.jpg duplicate_image"))
        #expect(problems.contains("labels/val/ghost.txt orphan_label"))
        #expect(problems.contains("images/val/v0.jpg missing_label") == false)
        #expect(result.report.errors == 2)
        #expect(result.report.splits["train"] == DatasetVersion.SplitSummary(images: 5, labelled: 3, instances: 6, classCounts: [3, 3]))
        #expect(result.report.imageSizes["≤32"] == 7)

        let out = dir.file("fixed")
        let (_, dropped) = try DatasetLibrary.writeFixed(plan, result, to: out)
        #expect(dropped == 6)  // broken.jpg+txt, t3.jpg+txt, copy.jpg, ghost.txt
        let fixed = try DatasetValidator.run(DatasetPlan.make(source: out, options: .init()), root: out, cache: nil)
        #expect(fixed.report.errors == 0)
        #expect(fixed.report.problems.isEmpty)
        #expect(FileManager.default.fileExists(atPath: root + "/images/train/broken.jpg"))  // never in place
        #expect(throws: YardError.self) { try DatasetLibrary.writeFixed(plan, result, to: out) }
    }

    /// CI's fuzzer found a `kpt_shape` whose product overflowed (a trap that ended the
    /// test process); each hostile shape is a one-line error naming the field.
    @Test(arguments: ["[9223372036854775807, 3]", "[-17, 3]", "[17, 7]", "[0, 2]", "[17, 3, 1]", "[a, b]", "17"])
    func aKeypointShapeOutOfReachIsRefusedByName(_ shape: String) throws {
        let dir = try TemporaryDirectory("ds")
        defer { dir.remove() }
        let root = try yoloDataset(dir)
        try dir.write("yolo/data.yaml", "train: images/train\nval: images/val\nnames: [square, disc]\nkpt_shape: \(shape)\n")
        #expect {
            try DatasetPlan.make(source: root, options: .init())
        } throws: { error in
            let message = "\(error)"
            return message.contains("kpt_shape") && message.contains("[17, 3]") && !message.contains("\n")
        }
    }

    @Test func aKeypointShapeGivesEachLabelItsColumns() throws {
        let dir = try TemporaryDirectory("ds")
        defer { dir.remove() }
        let root = try yoloDataset(dir)
        try dir.write("yolo/data.yaml", "train: images/train\nval: images/val\nnames: [square, disc]\nkpt_shape: [17, 3]\n")
        #expect(try DatasetPlan.make(source: root, options: .init()).keypoints == 51)
    }

    @Test func flatFolderIsSplitWithItsSeedAndLabelsFollowImages() throws {
        let dir = try TemporaryDirectory("ds")
        defer { dir.remove() }
        for i in 0..<20 {
            try write(jpegBytes(salt: UInt8(i)), dir.file("flat/img\(i).jpg"))
            try dir.write("flat/img\(i).txt", "\(i % 2) 0.5 0.5 0.2 0.2\n")
        }
        try dir.write("flat/classes.txt", "cat\ndog\n")
        let plan = try DatasetPlan.make(source: dir.file("flat"), options: .init(ratios: [0.7, 0.2, 0.1], seed: 5))
        #expect(plan.format == "flat" && plan.names == ["cat", "dog"])
        #expect(plan.splits.map { "\($0.name)=\($0.images.count)" } == ["train=14", "val=4", "test=2"])
        for split in plan.splits {
            for image in split.images {
                #expect(image.relpath.hasPrefix("images/\(split.name)/"))
                #expect(image.label == DatasetPlan.labelPath(for: image.relpath))
            }
        }
        let again = try DatasetPlan.make(source: dir.file("flat"), options: .init(ratios: [0.7, 0.2, 0.1], seed: 5))
        #expect(again.splits.map { $0.images.map(\.relpath) } == plan.splits.map { $0.images.map(\.relpath) })
        let other = try DatasetPlan.make(source: dir.file("flat"), options: .init(ratios: [0.7, 0.2, 0.1], seed: 6))
        #expect(other.splits.map { $0.images.map(\.relpath) } != plan.splits.map { $0.images.map(\.relpath) })
        let yaml = plan.entries.first { $0.relpath == "data.yaml" }!
        guard case .bytes(let text) = yaml.content else { Issue.record("no generated yaml"); return }
        #expect(String(decoding: text, as: UTF8.self).contains("1: \"dog\""))
    }

    @Test func cocoIsConvertedAndItsBadBoxesReported() throws {
        let dir = try TemporaryDirectory("ds")
        defer { dir.remove() }
        for i in 1...4 { try write(jpegBytes(width: 100, height: 50, salt: UInt8(i)), dir.file("coco/images/\(i).jpg")) }
        let json = """
        {"images": [\((1...4).map { "{\"id\": \($0), \"file_name\": \"\($0).jpg\", \"width\": 100, \"height\": 50}" }.joined(separator: ","))],
         "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}],
         "annotations": [
           {"id": 10, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 10], "iscrowd": 0},
           {"id": 11, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 1},
           {"id": 12, "image_id": 2, "category_id": 9, "bbox": [0, 0, 5, 5]},
           {"id": 13, "image_id": 2, "category_id": 1, "bbox": [5, 5, 0, 10]},
           {"id": 14, "image_id": 3, "category_id": 1, "bbox": [90, 40, 20, 20]}
         ]}
        """
        try dir.write("coco/annotations/instances.json", json)
        let plan = try DatasetPlan.make(source: dir.file("coco"), options: .init(ratios: [0.5, 0.5, 0], seed: 1))
        #expect(plan.format == "coco" && plan.names == ["person", "car"])
        let kinds = plan.problems.map { "\($0.kind): \($0.message.prefix(13))" }
        #expect(kinds == ["crowd_box: annotation 11", "class_out_of_range: annotation 12", "degenerate_box: annotation 13", "out_of_range_box: annotation 14"])
        let labelOfImage1 = plan.splits.flatMap(\.images).first { $0.relpath.hasSuffix("/1.jpg") }!.label!
        guard case .bytes(let rows) = plan.entries.first(where: { $0.relpath == labelOfImage1 })!.content else { Issue.record("no label"); return }
        #expect(String(decoding: rows, as: UTF8.self) == "1 0.200000 0.300000 0.200000 0.200000\n")
        let clipped = plan.splits.flatMap(\.images).first { $0.relpath.hasSuffix("/3.jpg") }!.label!
        guard case .bytes(let rows3) = plan.entries.first(where: { $0.relpath == clipped })!.content else { Issue.record("no label"); return }
        #expect(String(decoding: rows3, as: UTF8.self) == "0 0.950000 0.900000 0.100000 0.200000\n")
    }

    @Test func storedVersionIsImmutableAndReAddingIsANoOp() throws {
        let dir = try TemporaryDirectory("ds")
        defer { dir.remove() }
        let root = try yoloDataset(dir)
        // An image big enough to be hard-linked rather than copied.
        try write(jpegBytes(salt: 99) + [UInt8](repeating: 7, count: 40_000) + [0xFF, 0xD9], root + "/images/train/big.jpg")
        let library = DatasetLibrary(dataDirectory: dir.file("data"))
        let first = try library.prepare(source: root, options: .init())
        #expect(first.id.hasSuffix(".dir"))
        try library.store(first)
        #expect(library.exists(first.id))
        try library.verify(first.id, reference: "d@1")
        let yaml = try String(contentsOfFile: library.dataPath(first.id), encoding: .utf8)
        #expect(yaml.contains(library.treeDirectory(first.id)))

        let second = try library.prepare(source: root, options: .init())
        #expect(second.id == first.id)
        #expect(second.result.digests.allSatisfy { $0.md5.count == 32 })

        // A label edited in place: the stored copy keeps the old one.
        try "1 0.1 0.1 0.1 0.1\n".write(toFile: root + "/labels/train/t0.txt", atomically: false, encoding: .utf8)
        let stored = try String(contentsOfFile: library.treeDirectory(first.id) + "/labels/train/t0.txt", encoding: .utf8)
        #expect(stored.hasPrefix("0 0.5"))
        try library.verify(first.id, reference: "d@1")
        let third = try library.prepare(source: root, options: .init())
        #expect(third.id != first.id)

        // A hard-linked image edited in place is caught before training.
        let handle = try #require(FileHandle(forWritingAtPath: root + "/images/train/big.jpg"))
        try handle.seek(toOffset: 100)
        try handle.write(contentsOf: Data([1, 2, 3]))
        try handle.close()
        var info = stat()
        stat(library.treeDirectory(first.id) + "/images/train/big.jpg", &info)
        #expect(info.st_nlink == 3)  // the source, the object, the version's folder
        #expect(throws: YardError.self) { try library.verify(first.id, reference: "d@1") }
    }

    /// A version copied to an artifact store and fetched by another data dir
    /// is the same version; a damaged object or a manifest that points out
    /// of the version's folder is refused and leaves nothing behind.
    @Test func aPushedVersionIsPulledWholeAndADamagedOneIsRefused() async throws {
        let dir = try TemporaryDirectory("ds")
        defer { dir.remove() }
        let root = try yoloDataset(dir)
        let here = DatasetLibrary(dataDirectory: dir.file("server"))
        let prepared = try here.prepare(source: root, options: .init())
        try here.store(prepared)
        let bucket = LocalArtifactStore(root: dir.file("bucket"))
        #expect(try await !here.isPushed(prepared.id, to: bucket))
        try await here.push(prepared.id, to: bucket)
        #expect(try await here.isPushed(prepared.id, to: bucket))

        let there = DatasetLibrary(dataDirectory: dir.file("worker"))
        try await there.pull(prepared.id, from: bucket)
        try there.verify(prepared.id, reference: "d@1")
        let files = try DatasetFiles.list(root: there.treeDirectory(prepared.id), allowExternalSymlinks: false)
        let entries = try files.map { ($0, try FileDigest.read(there.treeDirectory(prepared.id) + "/" + $0, keep: 0, cache: nil).md5) }
        #expect(DVCHash.directory(entries) == prepared.id, "the same bytes at the same paths")
        #expect(try String(contentsOfFile: there.dataPath(prepared.id), encoding: .utf8).contains(there.treeDirectory(prepared.id)))

        // An object changed in the bucket: refused, nothing stored.
        let elsewhere = DatasetLibrary(dataDirectory: dir.file("other"))
        let md5 = prepared.result.digests[prepared.plan.entries.firstIndex { $0.relpath == "labels/train/t0.txt" }!].md5
        try "9 9 9 9 9\n".write(toFile: dir.file("bucket/_datasets/objects/\(md5.prefix(2))/\(md5.dropFirst(2))"), atomically: true, encoding: .utf8)
        await #expect(throws: YardError.self) { try await elsewhere.pull(prepared.id, from: bucket) }
        #expect(!elsewhere.exists(prepared.id))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir.file("other/datasets/versions"))) ?? []).isEmpty)

        // A manifest that names a path outside the version's folder.
        let hostile = #"[{"relpath": "../../escape.txt", "md5": "\#(md5)", "size": 1, "mtime": 0}]"#
        try hostile.write(toFile: dir.file("bucket/_datasets/versions/\(prepared.id)/manifest.json"), atomically: true, encoding: .utf8)
        await #expect(throws: YardError.self) { try await elsewhere.pull(prepared.id, from: bucket) }
        #expect(!FileManager.default.fileExists(atPath: dir.file("other/datasets/escape.txt")))
    }

    /// Ultralytics re-saves a JPEG without its end marker in place when it
    /// scans a dataset: such a file is a copy of its own in the version, so
    /// the source is never rewritten and the rewrite is not called an edit.
    @Test func aTruncatedJPEGIsStoredAsACopyUltralyticsMayRepair() throws {
        let dir = try TemporaryDirectory("ds")
        defer { dir.remove() }
        let root = try yoloDataset(dir)
        try write(jpegBytes(end: false, salt: 42) + [UInt8](repeating: 1, count: 40_000), root + "/images/train/t0.jpg")
        let library = DatasetLibrary(dataDirectory: dir.file("data"))
        let prepared = try library.prepare(source: root, options: .init())
        #expect(prepared.result.report.problems.contains { $0.kind == "truncated_jpeg" && $0.file == "images/train/t0.jpg" })
        try library.store(prepared)
        let stored = library.treeDirectory(prepared.id) + "/images/train/t0.jpg"
        var info = stat()
        stat(stored, &info)
        #expect(info.st_nlink == 1, "not linked to the source")
        try Data([0xFF, 0xD8, 0xFF, 0xD9]).write(to: URL(fileURLWithPath: stored))  // what a repair does
        try library.verify(prepared.id, reference: "d@1")
        #expect(FileManager.default.contents(atPath: root + "/images/train/t0.jpg")?.count == 40_000 + jpegBytes(end: false).count)
    }
}
