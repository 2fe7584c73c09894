import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import YardDatasets
import YardDomain
import YardStore
import YardTestSupport

/// `/api/datasets` and `dataset:NAME` jobs on the real service code (memory
/// drivers, a scripted engine): adding, re-adding, pinning, confinement,
/// hostile archives, concurrency and a full disk.
@Suite("Datasets API")
struct DatasetsAPITests {
    static let parser = JobConfigParser { _ in true }

    /// The JSON lines of an add; the last one is the result.
    static func add(_ client: any TestClientProtocol, _ body: String, token: String? = nil) async throws -> (status: Int, lines: [JSONValue]) {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await client.execute(uri: "/api/datasets", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
            let text = String(buffer: response.body)
            let lines = text.split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
            return (Int(response.status.code), lines)
        }
    }

    static func body(_ name: String, _ source: String, _ extra: String = "") -> String {
        #"{"name": "\#(name)", "source": "\#(source)"\#(extra)}"#
    }

    @Test func addReAddListShowReportAndAJobPinnedToTheVersion() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let source = try TestImages.yoloDataset(in: t.dir)
        try await t.test { client in
            let (status, lines) = try await Self.add(client, Self.body("shapes", source))
            #expect(status == 200)
            let added = try #require(lines.last?["added"], "\(lines)")
            #expect(added["created"] == .bool(true))
            #expect(added["version"]?["number"] == .int(1))
            let id = try #require(added["version"]?["id"]?.stringValue)
            #expect(id.hasSuffix(".dir") && id.count == 36)
            #expect(added["report"]?["problems"]?.arrayValue?.map { $0["kind"]?.stringValue ?? "" } == ["missing_label"])
            #expect(lines.contains { $0["phase"] == "read" })

            // The same data again: no new version.
            let again = try await Self.add(client, Self.body("shapes", source + "/"))
            #expect(again.lines.last?["added"]?["created"] == .bool(false))
            #expect(again.lines.last?["added"]?["version"]?["id"]?.stringValue == id)

            try await client.execute(uri: "/api/datasets", method: .get) { response in
                let list = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: response.body))
                #expect(list["datasets"]?.arrayValue?.count == 1)
                #expect(list["datasets"]?[0]?["versions"] == .int(1))
            }
            try await client.execute(uri: "/api/datasets/shapes/versions/1/report", method: .get) { response in
                #expect(response.status == .ok)
                let report = try JSONDecoder().decode(ValidationReport.self, from: Data(buffer: response.body))
                #expect(report.splits["train"]?.images == 4)
            }
            try await client.execute(uri: "/api/datasets/nope", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/api/datasets/shapes/versions/7/report", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/api/datasets/..%2F..%2Fetc", method: .get) { #expect($0.status == .badRequest) }

            // A job on dataset:shapes is pinned to version 1 and records it.
            let job = try await t.yard.control.submit(try Self.parser.parse("model: yolov8n.yaml\ntrain: {data: \"dataset:shapes\", epochs: 1}\n"))
            #expect(job.dataset == "shapes@\(id)")
            #expect(job.datasetHash == id)
            #expect(job.config["train"]?["data"]?.stringValue == "dataset:shapes@\(id)")
            try await client.execute(uri: "/api/datasets/shapes", method: .get) { response in
                let shown = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: response.body))
                #expect(shown["versions"]?[0]?["jobs"]?[0]?["id"]?.stringValue == job.id)
            }
            await #expect(throws: YardError.self) {
                _ = try await t.yard.control.submit(try Self.parser.parse("model: m.yaml\ntrain: {data: \"dataset:other\"}\n"))
            }
            await #expect(throws: YardError.self) {
                _ = try await t.yard.control.submit(try Self.parser.parse("model: m.yaml\ntrain: {data: \"dataset:shapes@9\"}\n"))
            }

            // The worker trains on the stored copy, whatever happens to the source.
            try FileManager.default.removeItem(atPath: source)
            try await t.worker(.training(epochs: 1)).drain()
            let done = try await t.yard.store.require(job.id)
            #expect(done.state == .succeeded, "\(done.message ?? "")")
            let events = try await t.yard.store.events(of: job.id, after: 0, limit: 100)
            #expect(events.first { $0.type == "dataset" }?.payload["version"]?.stringValue == id)
        }
    }

    @Test func badRequestsAndSourcesOutsideTheRootsAreRefusedAtOnce() async throws {
        let t = try TestYard(token: "tok")
        defer { t.dir.remove() }
        let source = try TestImages.yoloDataset(in: t.dir)
        try await t.test { client in
            // A token and no --dataset-root: no local path may be read.
            let (status, _) = try await Self.add(client, Self.body("d", source), token: "tok")
            #expect(status == 400)
        }
        let outside = try TemporaryDirectory("outside")
        defer { outside.remove() }
        let elsewhere = try TestImages.yoloDataset(in: outside)
        try FileManager.default.createSymbolicLink(atPath: t.dir.file("sneaky"), withDestinationPath: elsewhere)
        let rooted = try TestYard(token: "tok", datasetRoots: [t.dir.path])
        defer { rooted.dir.remove() }
        try await rooted.test { client in
            for (body, field) in [
                (Self.body("d", elsewhere), "source"), (Self.body("d", t.dir.path + "/../" + (outside.path as NSString).lastPathComponent + "/yolo"), "source"),
                (Self.body("d", t.dir.file("sneaky")), "source"), (Self.body("d", "yolo"), "source"), (Self.body("d", "s3://bucket/x"), "source"),
                (Self.body("../d", source), "name"), (Self.body("d", source, #", "split": "0.5,0.2""#), "split"),
                (Self.body("d", source, #", "format": "voc""#), "format"), ("{\"name\": 3}", "body"), ("not json", "body"),
            ] {
                var headers: HTTPFields = [.contentType: "application/json", .authorization: "Bearer tok"]
                headers[.accept] = "application/x-ndjson"
                try await client.execute(uri: "/api/datasets", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest, "\(body)")
                    let error = try JSONDecoder().decode([String: String].self, from: Data(buffer: response.body))
                    #expect(error["field"] == field, "\(body): \(error)")
                }
            }
            // Inside the root, with the token: added.
            let (_, lines) = try await Self.add(client, Self.body("d", source), token: "tok")
            #expect(lines.last?["added"]?["created"] == .bool(true), "\(lines)")
        }
        #expect(try await rooted.yard.store.datasetVersions(name: nil).count == 1)
    }

    @Test func aZipAddsTheSameVersionAndOneThatEscapesItsFolderIsRefused() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let source = try TestImages.yoloDataset(in: t.dir)
        #expect(try FullDisk.sh("cd \(t.dir.path) && zip -qr shapes.zip yolo") == 0)
        // Python's zipfile writes a member named ../escaped.txt as asked.
        #expect(try FullDisk.sh("python3 -c \"import zipfile; z = zipfile.ZipFile('\(t.dir.file("evil.zip"))', 'w'); z.writestr('data.yaml', 'train: a'); z.writestr('../escaped.txt', 'x'); z.close()\"") == 0)
        try await t.test { client in
            let folder = try await Self.add(client, Self.body("shapes", source))
            let zipped = try await Self.add(client, Self.body("shapes", t.dir.file("shapes.zip")))
            #expect(zipped.lines.last?["added"]?["version"]?["id"] == folder.lines.last?["added"]?["version"]?["id"])
            #expect(zipped.lines.last?["added"]?["created"] == .bool(false))
            let evil = try await Self.add(client, Self.body("evil", t.dir.file("evil.zip")))
            #expect(evil.lines.last?["message"]?.stringValue?.contains("outside its folder") == true, "\(evil.lines)")
            let notZip = try t.dir.write("fake.zip", "not a zip")
            let fake = try await Self.add(client, Self.body("fake", notZip))
            #expect(fake.lines.last?["message"]?.stringValue?.contains("not a readable ZIP") == true, "\(fake.lines)")
        }
        #expect(!FileManager.default.fileExists(atPath: t.dir.file("datasets/escaped.txt")))
        #expect(!FileManager.default.fileExists(atPath: t.dir.file("escaped.txt")))
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: t.dir.file("datasets/tmp"))) ?? []
        #expect(leftovers.isEmpty, "unpacked archives are removed: \(leftovers)")
    }

    /// An add cut short by a crash leaves an unpacked archive, a half-written
    /// version and object; the next add clears them.
    @Test func whatACutShortAddLeftIsClearedByTheNext() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let source = try TestImages.yoloDataset(in: t.dir)
        let leftovers = [t.dir.file("datasets/tmp/1234/data.yaml"), t.dir.file("datasets/versions/.tmp-abc.dir-1234/tree/x.txt"),
                         t.dir.file("datasets/objects/ab/cdef.tmp-1234")]
        for file in leftovers { try TestImages.write([1, 2, 3], file) }
        try await t.test { client in
            let (_, lines) = try await Self.add(client, Self.body("shapes", source))
            #expect(lines.last?["added"] != nil, "\(lines)")
        }
        for file in leftovers { #expect(!FileManager.default.fileExists(atPath: file), "\(file)") }
    }

    @Test func fiftyConcurrentAddsOfTheSameDataMakeOneVersion() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let source = try TestImages.yoloDataset(in: t.dir)
        try await t.live { port in
            let ids = try await withThrowingTaskGroup(of: (String?, Bool).self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/datasets")
                        request.method = .POST
                        request.body = .bytes(ByteBuffer(string: Self.body("shapes", source)))
                        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
                        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
                        let last = text.split(separator: "\n").last.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
                        return (last?["added"]?["version"]?["id"]?.stringValue, last?["added"]?["created"] == .bool(true))
                    }
                }
                var results: [(String?, Bool)] = []
                for try await result in group { results.append(result) }
                return results
            }
            #expect(ids.count == 50)
            #expect(Set(ids.map(\.0)).count == 1 && ids[0].0 != nil)
            #expect(ids.count { $0.1 } == 1, "exactly one add created the version")
        }
        #expect(try await t.yard.store.datasetVersions(name: "shapes").count == 1)
    }
}

/// A data dir on a full disk: the add fails with the reason and leaves
/// neither a half-written version nor a record.
@Suite("Datasets API: a full disk", .enabled(if: FullDisk.canMount, "needs root to mount a tmpfs"))
struct DatasetsFullDiskTests {
    @Test func anAddThatRunsOutOfSpaceLeavesNothingHalfWritten() async throws {
        let mount = try FullDisk(megabytes: 4)
        defer { mount.remove() }
        let sources = try TemporaryDirectory("big-source")
        defer { sources.remove() }
        // 6 images of 1 MB: more than the 4 MB disk (another filesystem, so copied, not linked).
        let source = try TestImages.yoloDataset(in: sources, imagePadding: 1 << 20)
        let t = try TestYard(sqlite: false, directory: mount.path)
        try await t.test { client in
            let (status, lines) = try await DatasetsAPITests.add(client, DatasetsAPITests.body("big", source))
            #expect(status == 200)
            #expect(lines.last?["error"] != nil, "\(lines.suffix(1))")
            #expect(lines.last?["message"]?.stringValue?.contains("No space left") == true || lines.last?["message"]?.stringValue?.contains("space") == true,
                    "\(lines.suffix(1))")
        }
        #expect(try await t.yard.store.datasetVersions(name: nil).isEmpty)
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: mount.path + "/datasets/versions")) ?? []
        #expect(versions.isEmpty, "no version folder, whole or partial: \(versions)")
        // With room again, the same add succeeds.
        try FileManager.default.removeItem(atPath: mount.path + "/datasets/objects")
        let small = try TestImages.yoloDataset(in: sources, name: "small")
        try await t.test { client in
            let (_, lines) = try await DatasetsAPITests.add(client, DatasetsAPITests.body("small", small))
            #expect(lines.last?["added"]?["created"] == .bool(true), "\(lines.suffix(1))")
        }
    }
}
