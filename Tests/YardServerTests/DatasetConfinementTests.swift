import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import YardDatasets
import YardDomain
import YardServer
import YardStore
import YardTestSupport

/// Issue 26, findings 3 and 6: with a token and `--dataset-root`, nothing a
/// dataset's YAML names may lead the server outside the roots; what a report
/// says of a file's line is a short, escaped excerpt; and a ZIP whose
/// headers understate its sizes stops at `--max-dataset-bytes`.
@Suite struct DatasetConfinementTests {
    /// A secret that sits outside the roots, in a YOLO dataset's labels.
    static let secret = "s3cr3t-0123456789abcdefghijklmnopqrstuvwxyz"

    /// `roots/` (what the server may read) and `outside/` beside it, holding
    /// a YOLO dataset's images and labels whose label rows are the secret.
    struct Layout {
        let roots: TemporaryDirectory
        let outside: TemporaryDirectory
        var outsideDataset: String { outside.file("yolo") }
        func remove() { roots.remove(); outside.remove() }
    }

    static func layout() throws -> Layout {
        let layout = Layout(roots: try TemporaryDirectory("roots"), outside: try TemporaryDirectory("outside"))
        _ = try TestImages.yoloDataset(in: layout.outside)
        // No data.yaml of its own: a YAML in the roots is all that names it (the issue's attack).
        try FileManager.default.removeItem(atPath: layout.outside.file("yolo/data.yaml"))
        for i in 0..<3 { try layout.outside.write("yolo/labels/train/t\(i).txt", secret + " 0.5 0.5 0.2 0.2\n") }
        return layout
    }

    static func add(_ client: any TestClientProtocol, _ name: String, _ source: String) async throws -> (text: String, last: JSONValue?) {
        try await client.execute(uri: "/api/datasets", method: .post,
                                 headers: [.contentType: "application/json", .authorization: "Bearer tok"],
                                 body: ByteBuffer(string: DatasetsAPITests.body(name, source))) { response in
            #expect(response.status == .ok)
            let text = String(buffer: response.body)
            let last = text.split(separator: "\n").last.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
            return (text, last)
        }
    }

    /// An error as the API ends an add: one line, naming `field`, the secret nowhere.
    static func expectRefused(_ answer: (text: String, last: JSONValue?), field: String, _ what: String) {
        let message = answer.last?["message"]?.stringValue ?? ""
        #expect(answer.last?["error"] != nil && answer.last?["added"] == nil, "\(what): \(answer.text)")
        #expect(answer.last?["field"]?.stringValue?.hasSuffix(field) == true, "\(what): \(answer.text)")
        #expect(!message.isEmpty && !message.contains("\n") && message.count < 400, "\(what): \(message)")
        #expect(!answer.text.contains("s3cr3t"), "\(what): \(answer.text)")
    }

    /// Nothing under `outside` was read: no version, no object, no md5 of it cached.
    static func expectNothingRead(_ t: TestYard, _ layout: Layout) async throws {
        #expect(try await t.yard.store.datasetVersions(name: nil).isEmpty)
        let objects = (try? FileManager.default.subpathsOfDirectory(atPath: t.dir.file("datasets/objects"))) ?? []
        #expect(objects.isEmpty, "\(objects)")
        let cache = (try? String(contentsOfFile: t.dir.file("datasets/hash-cache.txt"), encoding: .utf8)) ?? ""
        #expect(!cache.contains(layout.outside.path), "\(cache)")
    }

    @Test func aYAMLWhosePathLeavesTheRootsIsRefusedNamingTheFieldAndNothingOutsideIsRead() async throws {
        let layout = try Self.layout()
        defer { layout.remove() }
        let splits = "train: images/train\nval: images/val\nnames: [a, b]\n"
        let outsideName = (layout.outside.path as NSString).lastPathComponent
        let absolute = try layout.roots.write("evil.yaml", "path: \(layout.outsideDataset)\n" + splits)
        let dotDot = try layout.roots.write("dotdot.yaml", "path: ../\(outsideName)/yolo\n" + splits)
        let deeper = try layout.roots.write("sub/deeper.yaml", "path: ../../\(outsideName)/yolo\n" + splits)
        try FileManager.default.createSymbolicLink(atPath: layout.roots.file("link"), withDestinationPath: layout.outsideDataset)
        let linked = try layout.roots.write("linked.yaml", "path: link\n" + splits)
        try FileManager.default.createSymbolicLink(atPath: layout.roots.file("inner"), withDestinationPath: layout.outside.path)
        let throughFolder = try layout.roots.write("through.yaml", "path: inner/yolo\n" + splits)
        let t = try TestYard(token: "tok", datasetRoots: [layout.roots.path])
        defer { t.dir.remove() }
        try await t.test { client in
            for (name, yaml) in [("abs", absolute), ("dotdot", dotDot), ("deeper", deeper), ("linked", linked), ("through", throughFolder)] {
                Self.expectRefused(try await Self.add(client, name, yaml), field: "path", name)
            }
        }
        try await Self.expectNothingRead(t, layout)
    }

    /// `--allow-dataset-symlinks` lets files be links; it does not let a
    /// split (a folder the YAML names) lead out of the roots.
    @Test func aSplitThatLeavesTheRootsThroughASymlinkOrDotDotIsRefused() async throws {
        let layout = try Self.layout()
        defer { layout.remove() }
        let inside = try TestImages.yoloDataset(in: layout.roots, name: "d")
        try FileManager.default.removeItem(atPath: inside + "/images/train")
        try FileManager.default.createSymbolicLink(atPath: inside + "/images/train", withDestinationPath: layout.outsideDataset + "/images/train")
        let outsideName = (layout.outside.path as NSString).lastPathComponent
        let dotDot = try layout.roots.write("e/data.yaml", "train: ../../\(outsideName)/yolo/images/train\nval: images/val\nnames: [a, b]\n")
        let t = try TestYard(token: "tok", allowDatasetSymlinks: true, datasetRoots: [layout.roots.path])
        defer { t.dir.remove() }
        try await t.test { client in
            Self.expectRefused(try await Self.add(client, "linked", inside), field: "train", "a split through a symlink")
            Self.expectRefused(try await Self.add(client, "dotdot", dotDot), field: "train", "a split through ..")
        }
        try await Self.expectNothingRead(t, layout)
    }

    /// A label row is reported by its file and line, with at most a short,
    /// escaped excerpt of it: never the row itself, never a control character.
    @Test func theReportAndItsAPIShowOnlyAShortEscapedExcerptOfALine() async throws {
        let layout = try Self.layout()
        defer { layout.remove() }
        let source = try TestImages.yoloDataset(in: layout.roots, name: "d")
        try layout.roots.write("d/labels/train/t0.txt", "0 " + Self.secret + "\u{1B}[2J 0.5 0.5 0.2\n")
        try layout.roots.write("d/labels/train/t1.txt", "\u{1B}]0;pwned\u{07}\u{1B}[31m 0.5 0.5 0.2 0.2\n")
        try layout.roots.write("d/labels/train/t2.txt", "00000000000000000000000000000000000000000001.5 0.5 0.5 0.2 0.2\n")
        let t = try TestYard(token: "tok", datasetRoots: [layout.roots.path])
        defer { t.dir.remove() }
        try await t.test { client in
            let added = try await Self.add(client, "d", source)
            #expect(added.last?["added"]?["created"] == .bool(true), "\(added.text)")
            let report = try await client.execute(uri: "/api/datasets/d/versions/1/report", method: .get,
                                                  headers: [.authorization: "Bearer tok"]) { String(buffer: $0.body) }
            for text in [added.text, report] {
                let problems = try #require(try JSONDecoder().decode(JSONValue.self, from: Data(text.split(separator: "\n").last!.utf8))
                    .objectValue.flatMap { $0["added"]?["report"]?["problems"] ?? $0["problems"] }?.arrayValue, "\(text)")
                let bad = problems.filter { $0["kind"]?.stringValue == "bad_label" }
                #expect(Set(bad.compactMap { $0["file"]?.stringValue }) == ["labels/train/t0.txt", "labels/train/t1.txt", "labels/train/t2.txt"], "\(text)")
                for problem in problems {
                    let message = problem["message"]?.stringValue ?? ""
                    #expect(!message.contains("0123456789abcdefghij"), "more than a short excerpt: \(message)")
                    #expect(!message.contains("00000000000000000000000000000"), "more than a short excerpt: \(message)")
                    #expect(!message.unicodeScalars.contains { $0.properties.generalCategory == .control }, "a raw control character: \(message)")
                    #expect(message.count <= 160, "\(message)")
                }
                #expect(bad.contains { $0["message"]?.stringValue?.contains("s3cr3t-0123") == true }, "the excerpt still says which field: \(bad)")
            }
        }
    }

    /// A ZIP whose headers declare 1000 bytes for an entry of 64 MB of zeros.
    static func liarZip(at path: String, realBytes: Int = 64 << 20, declared: UInt32 = 1000) throws {
        try FullDisk.sh("python3 -c \"import zipfile; z = zipfile.ZipFile('\(path)', 'w', zipfile.ZIP_DEFLATED); "
            + "z.writestr('liar/images/zeros.jpg', bytes(\(realBytes))); z.close()\"")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func u32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        func put(_ at: Int, _ value: UInt32) { for k in 0..<4 { bytes[at + k] = UInt8((value >> (8 * UInt32(k))) & 0xFF) } }
        let end = bytes.count - 22  // the end of central directory record (no comment)
        #expect(u32(end) == 0x0605_4B50)
        let central = u32(end + 16)
        #expect(u32(central) == 0x0201_4B50 && u32(0) == 0x0403_4B50)
        put(central + 24, declared)  // the central directory's uncompressed size
        put(22, declared)            // the local header's
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func aZipThatUnderstatesItsSizesStopsAtTheLimitWithLessThanItWritten() async throws {
        let data = try TemporaryDirectory("yard-liar")
        defer { data.remove() }
        let zip = data.file("liar.zip")
        try Self.liarZip(at: zip)
        let size = try #require(FileStat.of(zip)?.size)
        #expect(size < 200_000, "a small archive: \(size) bytes")
        let limit: Int64 = 1_000_000
        let service = DatasetService(store: MemoryJobStore(), dataDirectory: data.path, importRoots: [], tokenRequired: false,
                                     allowSymlinks: false, maxDatasetBytes: limit)
        do {
            _ = try await service.add(.init(name: "liar", source: zip))
            Issue.record("the liar ZIP was added")
        } catch let error as YardError {
            #expect(error.field == "source", "\(error)")
            #expect(error.message.contains("--max-dataset-bytes") && !error.message.contains("\n"), "\(error.message)")
            // The message says what was on disk when it stopped.
            let written = error.message.firstMatch(of: /stopped after (\d+) bytes/).flatMap { Int64($0.1) }
            #expect(written != nil && written! < limit, "\(error.message)")
        }
        let left = (try? FileManager.default.subpathsOfDirectory(atPath: data.file("datasets/tmp"))) ?? []
        #expect(left.isEmpty, "the partial extraction is removed: \(left)")
    }

    /// Entries that would land outside the folder, or be symlinks, unpack nothing.
    @Test func zipEntriesThatEscapeOrAreSymlinksAreRefused() async throws {
        let data = try TemporaryDirectory("yard-zipslip")
        defer { data.remove() }
        let service = DatasetService(store: MemoryJobStore(), dataDirectory: data.path, importRoots: [], tokenRequired: false, allowSymlinks: false)
        let cases: [(String, String)] = [
            ("absolute", "z.writestr('d/data.yaml', 'x'); z.writestr('/tmp/escaped-\(getpid()).txt', 'x')"),
            ("dotdot", "z.writestr('d/data.yaml', 'x'); z.writestr('d/../../escaped.txt', 'x')"),
            ("symlink", "i = zipfile.ZipInfo('d/link.jpg'); i.external_attr = 0o120777 << 16; z.writestr(i, '/etc/hostname'); z.writestr('d/data.yaml', 'x')"),
        ]
        for (name, body) in cases {
            let zip = data.file(name + ".zip")
            try FullDisk.sh("python3 -c \"import zipfile; z = zipfile.ZipFile('\(zip)', 'w'); \(body); z.close()\"")
            do {
                _ = try await service.add(.init(name: name, source: zip))
                Issue.record("\(name) was added")
            } catch let error as YardError {
                #expect(error.field == "source" && !error.message.contains("\n"), "\(name): \(error)")
                #expect(error.message.contains("not unpacked"), "\(name): \(error.message)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/escaped-\(getpid()).txt"))
        #expect(!FileManager.default.fileExists(atPath: data.file("escaped.txt")))
        let left = (try? FileManager.default.subpathsOfDirectory(atPath: data.file("datasets/tmp"))) ?? []
        #expect(left.isEmpty, "\(left)")
    }
}
