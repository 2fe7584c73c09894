import Foundation
import NIOCore
import Testing
import YardDomain
import YardQueue
import YardRedis
import YardTestSupport
@testable import YardDatasets
@testable import YardServer
@testable import YardWorker

/// Issue 26: every parser of untrusted bytes, fuzzed for a bounded time
/// (`YARD_FUZZ_SECONDS` per parser, 2 by default; `bench/fuzz.sh` runs
/// longer). A trap ends the test process and fails the run; the printed seed
/// replays it. Each parser must answer every input with a value or its own
/// error, never a trap, a hang or a message of unbounded size.
@Suite("Fuzzing the parsers of untrusted bytes", .serialized)
struct FuzzTests {
    /// A fuzz loop whose corpus grows with inputs that give an answer not seen before.
    static func fuzz(_ name: String, seeds: [String], _ answer: @escaping @Sendable ([UInt8]) -> String) async {
        await fuzz(name, seeds: seeds.map { Array($0.utf8) }, answer)
    }

    /// The loop runs on a thread of its own: it would otherwise hold one of
    /// the two threads every other test (and their servers) share.
    static func fuzz(_ name: String, seeds: [[UInt8]], _ answer: @escaping @Sendable ([UInt8]) -> String) async {
        let (ran, longest, slowest) = await offload {
            var fuzzer = Fuzzer(name)
            var seen = Set<String>()
            var longest = 0
            let ran = fuzzer.run(seeds: seeds) { input in
                let text = answer(input)
                // Each line of an answer is one message (a report has one a problem).
                for line in text.split(separator: "\n") { longest = max(longest, line.utf8.count) }
                // Digits out, so "line 3" and "line 4" are one answer.
                return seen.insert(String(text.prefix(80).filter { !$0.isNumber })).inserted
            }
            return (ran, longest, fuzzer.slowest)
        }
        #expect(ran > seeds.count)
        // One input that takes this long is a hang to an attacker (the bound is far above any real input's time).
        #expect(slowest.seconds < 10, "\(name): one input took \(slowest.seconds) s: \(String(decoding: slowest.input.prefix(200), as: UTF8.self).debugDescription)")
        // A message names a field and says what to do in a line: never the whole input back.
        #expect(longest < 16 << 10, "\(name): a message of \(longest) bytes")
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? YardError { return "\(error.code): \(error.message)" }
        return "\(type(of: error)): \(error)"
    }

    @Test func multipart() async {
        let image = String(decoding: TestImages.jpeg(width: 4, height: 4), as: UTF8.self)
        let seeds = [
            "--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\(image)\r\n--B\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nxy\r\n--B--\r\n",
            "--B\r\n\r\n\r\n--B\r\n\r\n\r\n--B--",
            "preamble\r\n--B\r\nX: y\r\n\r\nbody\r\n--B--\r\nepilogue",
        ]
        await Self.fuzz("multipart", seeds: seeds) { input in
            do {
                let parts = try Multipart.parts(Data(input), boundary: "B", maxParts: 16)
                return "ok \(parts.count)"
            } catch { return Self.describe(error) }
        }
    }

    @Test func cocoJSON() async throws {
        let dir = try TemporaryDirectory("fuzz-coco")
        defer { dir.remove() }
        for i in 1...2 { try TestImages.write(TestImages.jpeg(width: 40, height: 30, salt: UInt8(i)), dir.file("coco/images/\(i).jpg")) }
        let seed = """
        {"images": [{"id": 1, "file_name": "1.jpg", "width": 40, "height": 30}, {"id": 2, "file_name": "images/2.jpg", "width": 40, "height": 30}],
         "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}],
         "annotations": [{"id": 10, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 10], "iscrowd": 0},
                         {"id": 11, "image_id": 2, "category_id": 1, "bbox": [30, 20, 20, 20]}]}
        """
        let path = dir.file("coco/instances.json")
        await Self.fuzz("coco", seeds: [seed]) { input in
            FileManager.default.createFile(atPath: path, contents: Data(input))
            do {
                let plan = try DatasetPlan.make(source: path, options: .init(ratios: [0.5, 0.5, 0], seed: 1))
                return "ok " + plan.problems.map(\.kind).joined(separator: ",") + plan.problems.map(\.message).joined(separator: "\n")
            } catch { return Self.describe(error) }
        }
    }

    @Test func yoloLabels() async {
        let seeds = ["0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.2 0.1 0.2 0.3\n", "2 0.5 0.5 0.1 0.1 0.5 0.5 2 0.4 0.4 1\n", "x\n\n-1 1 1 1 1\r\n"]
        await Self.fuzz("yolo-labels", seeds: seeds) { input in
            let checked = YOLOLabels.check(input, file: "labels/a.txt", classCount: 3, keypoints: input.count % 2 == 0 ? nil : 2)
            return checked.problems.map { "\($0.kind) \($0.message)" }.joined(separator: "\n") + " \(checked.classes.count)"
        }
    }

    @Test func datasetYAML() async throws {
        let dir = try TemporaryDirectory("fuzz-yaml")
        defer { dir.remove() }
        let root = try TestImages.yoloDataset(in: dir)
        let yaml = root + "/data.yaml"
        let seed = (try? String(contentsOfFile: yaml, encoding: .utf8)) ?? "path: .\ntrain: images/train\nval: images/val\nnames: {0: a, 1: b}\n"
        let seeds = [seed, "train: images/train\nval: images/val\nnc: 2\nnames: [a, b]\nkpt_shape: [17, 3]\n"]
        await Self.fuzz("data.yaml", seeds: seeds) { input in
            FileManager.default.createFile(atPath: yaml, contents: Data(input))
            do {
                // The folder is given: data.yaml's own `path:` is not followed.
                let plan = try DatasetPlan.make(source: root, options: .init())
                return "ok \(plan.names.count) " + plan.problems.map(\.kind).joined(separator: ",")
            } catch { return Self.describe(error) }
        }
    }

    @Test func jobConfigs() async {
        let seeds = [
            "model: yolov8n.yaml\ntrain: {data: /d/data.yaml, epochs: 3, imgsz: 32, lr0: 0.01}\nmetadata: {a: 1}\n",
            "task_id: t1\nmodel: yolov8n.pt\ntrain: {data: dataset:shapes@2, epochs: 3}\nsweeper: {n_trials: 4, sampler: TPESampler, direction: maximize, metric: metrics/mAP50(B)}\nsearch_space: {train: {lr0: [loguniform, 1e-5, 1e-1], batch: [choice, 8, 16], momentum: [range, 0.8, 0.95, 0.05], epochs: [int, 1, 9]}}\n",
            "model: yolov8n.yaml\ntrain: {data: /d/data.yaml}\ndeploy: {model: m, alias: production, metric: metrics/mAP50(B)}\nnotify: {url: https://example.com/hook}\n",
        ]
        let parser = JobConfigParser { _ in true }
        await Self.fuzz("job-config", seeds: seeds) { input in
            do {
                let config = try parser.parse(String(decoding: input, as: UTF8.self))
                return "ok \(config.json.objectValue?.keys.sorted().joined(separator: ",") ?? "")"
            } catch { return Self.describe(error) }
        }
    }

    @Test func wyoloMessages() async {
        let seeds = [#"{"task_id": "t1", "config_path": "/cfg/job.yaml", "trial_number": 7}"#,
                     #""{\"task_id\": \"t2\", \"config_path\": \"/cfg/job.yaml\"}""#, "[1, 2]", "\"x\""]
        await Self.fuzz("wyolo", seeds: seeds) { input in
            let text = String(decoding: input, as: UTF8.self)
            do {
                let fields = try WyoloBridge.bounded(WyoloBridge.listFields(text), raw: text)
                return "ok " + fields.keys.sorted().joined(separator: ",")
            } catch { return Self.describe(error) }
        }
    }

    @Test func respReplies() async {
        let seeds = ["+OK\r\n", "-ERR wrong\r\n", ":42\r\n", "$5\r\nhello\r\n", "$-1\r\n", "*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
                     "*3\r\n$4\r\nnone\r\n*0\r\n*-1\r\n", "%1\r\n+k\r\n+v\r\n", "_\r\n"]
        let parser = RESPParser(maxBulkBytes: 1 << 20, maxDepth: 16, maxElements: 1 << 16)
        await Self.fuzz("resp", seeds: seeds) { input in
            var buffer = ByteBuffer(bytes: input)
            var values: [String] = []
            do {
                while buffer.readableBytes > 0, let value = try parser.parse(&buffer) { values.append(String("\(value)".prefix(40))) }
                return "ok \(values.count)"
            } catch { return "\(error)" }
        }
    }

    @Test func imageHeaders() async {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16(v >> 16) }
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR".utf8) + [0, 0, 0, 40, 0, 0, 0, 30, 8, 2, 0, 0, 0, 0, 0, 0, 0]
        let bmp: [UInt8] = Array("BM".utf8) + le32(70) + le32(0) + le32(54) + le32(40) + le32(4) + le32(-3 & 0xFFFFFFFF) + le16(1) + le16(24) + [UInt8](repeating: 0, count: 24)
        let webp: [UInt8] = Array("RIFF".utf8) + le32(30) + Array("WEBPVP8X".utf8) + le32(10) + [0, 0, 0, 0, 39, 0, 0, 29, 0, 0] + [UInt8](repeating: 0, count: 8)
        let tiff: [UInt8] = [0x49, 0x49, 0x2A, 0x00] + le32(8) + le16(2) + le16(256) + le16(3) + le32(1) + le32(40) + le16(257) + le16(4) + le32(1) + le32(30) + le32(0)
        let seeds = [TestImages.jpeg(width: 40, height: 30), png, bmp, webp, tiff]
        await Self.fuzz("image-headers", seeds: seeds) { input in
            let tail = Array(input.suffix(2))
            switch ImageProbe.probe(head: Array(input.prefix(ImageProbe.headBytes)), tail: tail, size: Int64(input.count), ext: input.count % 3 == 0 ? "dng" : "") {
            case .ok(let info): return "ok \(info.format) \(info.width)x\(info.height)"
            case .warning(let info, let why): return "warning \(info.format) \(why)"
            case .corrupt(let why): return "corrupt \(why)"
            case .unchecked(let format): return "unchecked \(format)"
            }
        }
    }
}
