import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import YardDomain
import YardEngine
import YardServer
import YardStore
import YardTestSupport

/// Secrets planted in a config appear nowhere: not in any file of the data
/// dir (database, WAL, spool, logs, specs), not in any API response; and
/// the data dir is private to its user.
@Suite("Secrets at rest")
struct SecretsAtRestTests {
    static let planted = ["pl4nted-mlflow-pw", "pl4nted-minio-key", "pl4nted-bearer-tok", "pl4nted-redis-pw", "AKIAPLANTEDEXAMPLE12"]

    static func config(data: String) -> String {
        """
        task_id: sec1
        model: yolov8n.yaml
        train: {data: \(data), epochs: 1}
        mlflow: {MLFLOW_TRACKING_URI: "http://alice:pl4nted-mlflow-pw@127.0.0.1:9/"}
        redis: {REDIS_HOST: localhost, REDIS_PASSWORD: pl4nted-redis-pw}
        extras: {minio_key: pl4nted-minio-key, Authorization: "Bearer pl4nted-bearer-tok", aws: "AKIAPLANTEDEXAMPLE12"}
        metadata: {content: "trained with pl4nted-minio-key via pl4nted-mlflow-pw"}
        """
    }

    /// An engine that prints every secret it could know.
    static let leakyEngine = ScriptedEngineRunner { request in
        let run = "\(request.spec["project"]?.stringValue ?? "")/\(request.spec["name"]?.stringValue ?? "")"
        return planted.map { EngineOutput.log("engine says \($0)") } + [
            .event(EngineEvent(kind: .log, payload: ["line": "header Authorization: Bearer pl4nted-bearer-tok"])),
            .event(EngineEvent(kind: .started, payload: ["device": "cpu", "save_dir": .string(run), "epochs": 1])),
            .event(EngineEvent(kind: .epoch, payload: ["epoch": 1, "epochs": 1, "metrics": ["m": 0.5]])),
            .event(EngineEvent(kind: .finished, payload: ["best": .string(run + "/weights/best.pt"), "metrics": [:]])),
        ]
    }

    static func files(under root: String) -> [String] {
        var out: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue { out.append(relative) }
        }
        return out
    }

    static func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int) ?? -1
    }

    @Test func plantedSecretsAreNowhereInTheDataDirOrTheAPI() async throws {
        let dir = try TemporaryDirectory("yard-secrets")
        defer { dir.remove() }
        let data = try dir.write("demo/data.yaml", "path: .\ntrain: images\nval: images\nnames: {0: a}\n")
        var options = YardOptions()
        options.dataDirectory = dir.file("data")
        let yard = try await Yard.embedded(options)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let app = yard.buildApplication(logger: logger)
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/jobs", method: .post, headers: [.contentType: "application/yaml"],
                                     body: ByteBuffer(string: Self.config(data: data))) { #expect($0.status == .created) }
        }
        try await yard.workers(runner: Self.leakyEngine, logger: logger)[0].drain()
        let responses = try await app.test(.router) { client in
            var texts: [String] = []
            for uri in ["/api/jobs", "/api/jobs/sec1", "/api/jobs/sec1/events", "/api/jobs/sec1/logs"] {
                texts.append(try await client.execute(uri: uri, method: .get) { $0.text })
            }
            return texts
        }
        let job = try await yard.store.require("sec1")
        #expect(job.state == .succeeded, "\(job.message ?? "")")
        #expect(responses[3].contains("engine says ***"))
        #expect(await !yard.spool.pendingJobs().isEmpty, "the tracking calls wait in the spool (no replayer runs here)")
        // The worker can still read them: they are sealed, not lost.
        let secrets = try await yard.store.secrets(of: "sec1")
        #expect(Redaction.restore(job.config, secrets: secrets)["redis"]?["REDIS_PASSWORD"] == "pl4nted-redis-pw")

        let root = dir.file("data")
        let files = Self.files(under: root)
        #expect(files.contains("yard.sqlite") && files.contains("tracking/sec1.jsonl") && files.contains("jobs/sec1/train.log"))
        for file in files {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: root + "/" + file))
            for secret in Self.planted {
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(secret) is in \(file)")
            }
        }
        for (index, text) in responses.enumerated() {
            for secret in Self.planted { #expect(!text.contains(secret), "\(secret) in response \(index)") }
        }
        #expect(Self.mode(root) == 0o700)
        for file in ["yard.sqlite", "yard.sqlite-wal", "secret.key", "tracking/sec1.jsonl", "jobs/sec1/train.log"] {
            #expect(Self.mode(root + "/" + file) == 0o600, "\(file) is \(String(Self.mode(root + "/" + file), radix: 8))")
        }
    }

    @Test func aCopyWithoutItsKeyRevealsNothingAndRotationKeepsSecretsReadable() async throws {
        let dir = try TemporaryDirectory("yard-rotate")
        defer { dir.remove() }
        let data = try dir.write("demo/data.yaml", "path: .\ntrain: images\nval: images\nnames: {0: a}\n")
        var options = YardOptions()
        options.dataDirectory = dir.file("data")
        let parser = JobConfigParser { _ in true }
        do {
            let yard = try await Yard.embedded(options)
            _ = try await yard.control.submit(try parser.parse(Self.config(data: data)))
            // Another process on the same data dir, or a rotation beside a server, is refused.
            let error = try await #require(throws: YardError.self) { try await Yard.embedded(options) }
            #expect(error.message.contains("in use by another yard process"))
            await #expect(throws: YardError.self) { try await SecretRotation.rotate(dataDirectory: dir.file("data"), keyFile: nil, environment: [:]) }
        }
        let keyFile = dir.file("data/secret.key")
        let oldKey = try String(contentsOfFile: keyFile, encoding: .utf8)
        // A copy of the data dir without its key: the secrets do not open.
        let other = try SecretBox(keys: SecretBox.parseKeys(SecretBox.newKey(), source: "k"))
        let copy = SQLiteJobStore(database: try YardDatabase(path: dir.file("data/yard.sqlite")), secrets: other)
        await #expect(throws: YardError.self) { try await copy.secrets(of: "sec1") }

        let result = try await SecretRotation.rotate(dataDirectory: dir.file("data"), keyFile: nil, environment: [:])
        #expect(result.rows == 1)
        let newKey = try String(contentsOfFile: keyFile, encoding: .utf8)
        #expect(newKey != oldKey && newKey.split(separator: "\n").count == 1)
        let yard = try await Yard.embedded(options)
        let job = try await yard.store.require("sec1")
        let secrets = try await yard.store.secrets(of: "sec1")
        #expect(Redaction.restore(job.config, secrets: secrets)["extras"]?["minio_key"] == "pl4nted-minio-key")
        let old = try SecretBox(keys: SecretBox.parseKeys(oldKey, source: "old"))
        let withOld = SQLiteJobStore(database: try YardDatabase(path: dir.file("data/yard.sqlite")), secrets: old)
        await #expect(throws: YardError.self) { try await withOld.secrets(of: "sec1") }
    }
}
