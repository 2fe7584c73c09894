import Foundation
import Testing
import YardArtifacts
import YardDomain
import YardTestSupport

enum S3Server {
    /// The S3 server scripts/test.sh starts (moto_server) for the test run.
    static func endpoint() throws -> String {
        guard let endpoint = ProcessInfo.processInfo.environment["YARD_TEST_S3_ENDPOINT"] else {
            throw HarnessError("no S3 server: run the tests with scripts/test.sh, which starts moto_server (YARD_TEST_S3_ENDPOINT)")
        }
        return endpoint
    }

    static func client(partSize: Int = 16 << 20) throws -> S3Client {
        try S3Client(endpoint: try endpoint(), accessKey: "testing", secretKey: "testing", partSize: partSize)
    }

    static func bucket(_ name: String) -> String { "\(name)-\(UUID().uuidString.prefix(8).lowercased())" }
}

@Suite("S3 client against a real S3 server", .enabled(if: TestEnvironment.ready, "run scripts/test.sh"))
struct S3ClientTests {
    @Test func putGetHeadListIncludingAMultipartFile() async throws {
        let client = try S3Server.client(partSize: 5 << 20)
        let bucket = S3Server.bucket("client")
        try await client.createBucket(bucket)
        try await client.createBucket(bucket)  // idempotent
        let dir = try TemporaryDirectory("s3")
        defer { dir.remove() }

        let small = try dir.write("small.txt", "hello weights")
        var big = Data(count: 12 << 20)
        big.withUnsafeMutableBytes { raw in for i in 0..<raw.count { raw[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) } }
        let bigPath = dir.file("big.pt")
        try big.write(to: URL(fileURLWithPath: bigPath))

        #expect(try await client.putFile(small, bucket: bucket, key: "job/small.txt") == 13)
        #expect(try await client.putFile(bigPath, bucket: bucket, key: "job/weights/big.pt") == Int64(big.count))

        try await client.getFile(bucket: bucket, key: "job/weights/big.pt", to: dir.file("back/big.pt"))
        #expect(FileManager.default.contents(atPath: dir.file("back/big.pt")) == big)
        try await client.getFile(bucket: bucket, key: "job/small.txt", to: dir.file("back/small.txt"))
        #expect(try String(contentsOfFile: dir.file("back/small.txt"), encoding: .utf8) == "hello weights")

        let head = try #require(try await client.head(bucket: bucket, key: "job/weights/big.pt"))
        #expect(head.size == Int64(big.count))
        #expect(head.etag.hasSuffix("-3"), "three parts of at most 5 MiB: \(head.etag)")
        #expect(try await client.head(bucket: bucket, key: "job/none") == nil)
        #expect(try await client.list(bucket: bucket, prefix: "job/").map(\.key) == ["job/small.txt", "job/weights/big.pt"])
        #expect(try await client.list(bucket: bucket, prefix: "job/weights/").count == 1)

        await #expect(throws: S3Client.Failure.self) {
            try await client.getFile(bucket: bucket, key: "job/missing", to: dir.file("missing"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("missing")), "no half-written file")
    }

    @Test func puttingIntoABucketThatDoesNotExistIsRefused() async throws {
        let client = try S3Server.client()
        await #expect(throws: S3Client.Failure.self) {
            try await client.putFile("/etc/hostname", bucket: "no-such-bucket-\(UUID().uuidString.prefix(6).lowercased())", key: "x")
        }
    }

    @Test func listingFollowsContinuationTokens() async throws {
        let client = try S3Server.client()
        let bucket = S3Server.bucket("list")
        try await client.createBucket(bucket)
        let dir = try TemporaryDirectory("s3-list")
        defer { dir.remove() }
        let file = try dir.write("f", "x")
        for i in 0..<1003 { try await client.putFile(file, bucket: bucket, key: String(format: "p/%04d", i)) }
        let all = try await client.list(bucket: bucket, prefix: "p/")
        #expect(all.count == 1003)
        #expect(Set(all.map(\.key)).count == 1003)
    }
}

extension EndToEnd {
@Suite("Training with S3 artifacts and datasets")
struct S3TrainingTests {
    @Test func aDatasetInABucketTrainsKeepsArtifactsInS3AndIsCachedForTheNextJob() async throws {
        let endpoint = try S3Server.endpoint()
        let client = try S3Server.client()
        let h = try YardHarness("s3")
        defer { h.dir.remove() }
        let local = try h.demoDataset(train: 16, val: 4)
        let root = (local as NSString).deletingLastPathComponent
        let dataBucket = S3Server.bucket("data")
        let artifactBucket = S3Server.bucket("artifacts")
        try await client.createBucket(dataBucket)
        let files = FileManager.default.enumerator(atPath: root)!.compactMap { $0 as? String }.filter {
            var dir: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + $0, isDirectory: &dir) && !dir.boolValue
        }
        for file in files { try await client.putFile(root + "/" + file, bucket: dataBucket, key: "demo/" + file) }

        let yard = try await h.up()
        defer { yard.process.terminate() }
        let config = """
            model: yolov8n.yaml
            train: {data: s3://\(dataBucket)/demo, epochs: 2, imgsz: 64, batch: 8, workers: 0, plots: false}
            minio: {MINIO_ENDPOINT: \(endpoint), MINIO_ID: testing, MINIO_SECRET_KEY: s3-secret-value, MINIO_BUCKET: \(artifactBucket)}

            """
        let first = try await yard.submit(config)
        try await yard.waitForState(first, "succeeded")
        let second = try await yard.submit(config)
        try await yard.waitForState(second, "succeeded")

        // The first job downloaded every file; the second found them all in the cache.
        let pulls = try await [first, second].asyncMap { id in
            try await eventPayloads(yard, id, type: "dataset").first ?? .null
        }
        #expect(pulls[0]["objects"]?.intValue == files.count)
        #expect(pulls[0]["downloaded"]?.intValue == files.count)
        #expect(pulls[1]["downloaded"] == 0)
        // The cache has a folder of its own: a bucket named like a part of the
        // dataset store (versions, objects) cannot write into it.
        #expect(pulls[0]["path"]?.stringValue?.hasPrefix(h.data + "/datasets/s3/\(dataBucket)/demo") == true, "\(pulls[0])")
        let job = try await yard.job(first)
        #expect(job["dataset_hash"]?.stringValue?.count == 64)
        #expect(job["dataset_hash"] == (try await yard.job(second))["dataset_hash"])

        // Weights, results and the log are in the bucket, and download intact.
        let keys = Set(try await client.list(bucket: artifactBucket, prefix: "\(first)/").map(\.key))
        for expected in ["weights/best.pt", "weights/last.pt", "results.csv", "train.log"] {
            #expect(keys.contains("\(first)/\(expected)"), "\(expected) missing from \(keys.sorted())")
        }
        let copy = h.dir.file("best-from-s3.pt")
        try await client.getFile(bucket: artifactBucket, key: "\(first)/weights/best.pt", to: copy)
        #expect(FileManager.default.contents(atPath: copy) == FileManager.default.contents(atPath: job["best_weights"]?.stringValue ?? ""))
        #expect(!FileManager.default.fileExists(atPath: h.data + "/artifacts/\(first)"), "nothing went to the local store")
        #expect(!(try await HTTPText.get(yard.base + "/api/jobs/\(first)")).contains("s3-secret-value"), "the secret is redacted")
        let log = try h.yard(["logs", first], server: yard.port)
        #expect(log.output.contains("\(files.count) downloaded") && !log.output.contains("s3-secret-value"))
    }

    @Test func aStoppedJobResumesFromItsS3CheckpointWhenTheLocalRunIsGone() async throws {
        let endpoint = try S3Server.endpoint()
        let client = try S3Server.client()
        let h = try YardHarness("s3-resume")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 64)
        let bucket = S3Server.bucket("ckpt")
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let id = try await yard.submit("""
            model: yolov8n.yaml
            train: {data: \(data), epochs: 6, imgsz: 64, batch: 8, workers: 0, plots: false}
            minio: {MINIO_ENDPOINT: \(endpoint), MINIO_ID: testing, MINIO_SECRET_KEY: s3-secret-value, MINIO_BUCKET: \(bucket)}
            """)
        try await yard.waitFor(id, "first epoch") { ($0["epoch"]?.intValue ?? 0) >= 1 }
        #expect(try h.yard(["stop", id], server: yard.port).status == 0)
        try await yard.waitForState(id, "stopped")
        let reached = try await yard.job(id)["epoch"]?.intValue ?? 0
        #expect(try await client.head(bucket: bucket, key: "\(id)/weights/last.pt") != nil)

        // As if the job went to another machine: nothing of the run is left locally.
        try FileManager.default.removeItem(atPath: h.data + "/runs/\(id)")
        let resume = try h.yard(["resume", id, "--wait"], server: yard.port)
        #expect(resume.status == 0, "\(resume.output)")
        #expect(resume.output.contains("resuming after epoch \(reached)"), "\(resume.output)")
        let job = try await yard.job(id)
        #expect((job["epoch_metrics"]?.arrayValue ?? []).map { $0["epoch"]?.intValue ?? 0 } == Array(1...6))
    }
}
}

func eventPayloads(_ yard: RunningYard, _ id: String, type: String) async throws -> [JSONValue] {
    let stream = try await HTTPText.get(yard.base + "/api/jobs/\(id)/events")
    return stream.components(separatedBy: "\n\n").filter { $0.contains("event: \(type)\n") }.compactMap { block in
        block.split(separator: "\n").first { $0.hasPrefix("data: ") }.flatMap {
            try? JSONDecoder().decode(JSONValue.self, from: Data($0.dropFirst(6).utf8))
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async throws -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
