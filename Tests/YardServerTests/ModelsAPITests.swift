import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import YardArtifacts
import YardDomain
import YardServing
import YardStore
import YardTestSupport

/// The registry of record on the embedded default (no MLflow): versions
/// numbered by the store, weights kept by content hash and served back,
/// aliases with their history and rollback, and every bad predict request
/// refused with its 4xx before any predictor is started (the engine here
/// does not exist: a request that reached one would fail with a 503).
@Suite("Models API")
struct ModelsAPITests {
    /// A succeeded job whose best weights are in the server's artifact folder.
    static func succeededJob(_ t: TestYard, _ id: String, weights: String, extra: String = "", mAP: Double? = 0.5, at seconds: Double = 0) async throws {
        let parser = JobConfigParser { _ in true }
        let config = try parser.parse("model: yolov8n.yaml\ntask_id: \(id)\ntrain: {data: \(t.data), epochs: 1}\n" + extra)
        try await t.yard.store.insert(Job(id: id, config: config, redacted: Redaction.redact(config.json),
                                          createdAt: Date(timeIntervalSince1970: 1_800_000_000 + seconds)), secrets: [:])
        try await t.yard.store.update(id) {
            $0.state = .succeeded
            $0.finalMetrics = mAP.map { ["metrics/mAP50-95(B)": $0] } ?? ["metrics/precision(B)": 0.1]
        }
        _ = try t.dir.write("artifacts/\(id)/weights/best.pt", weights)
    }

    static func json(_ client: any TestClientProtocol, _ uri: String, _ method: HTTPRequest.Method = .get, _ body: String? = nil,
                     headers: HTTPFields = [.contentType: "application/json"]) async throws -> (Int, JSONValue) {
        try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
            (Int(response.status.code), (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: response.body))) ?? .null)
        }
    }

    @Test func registerWithoutMLflowKeepsWeightsByHashAndMovesAliasesWithHistory() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        try await Self.succeededJob(t, "job-a", weights: "weights of a")
        try await Self.succeededJob(t, "job-b", weights: "weights of b")
        try await t.test { client in
            let (status, v1) = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-a", "name": "det", "alias": "champion"}"#)
            #expect(status == 201, "\(v1)")
            #expect(v1["version"] == "1")
            let sha = SHA256.hash(data: Data("weights of a".utf8)).hex
            #expect(v1["sha256"]?.stringValue == sha)
            #expect(v1["source"] == "job-a/weights/best.pt")
            #expect(v1["metrics"]?["metrics/mAP50-95(B)"] == .double(0.5))
            #expect(FileManager.default.contents(atPath: t.dir.file("models/sha256/\(sha.prefix(2))/\(sha).pt")) == Data("weights of a".utf8))

            let (again, same) = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-a", "name": "det"}"#)
            #expect(again == 200 && same["version"] == "1", "the same job again is the version it made")
            let (_, v2) = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-b", "name": "det"}"#)
            #expect(v2["version"] == "2")

            let (moved, change) = try await Self.json(client, "/api/models/det/aliases", .post, #"{"alias": "champion", "version": "2"}"#)
            #expect(moved == 200 && change["previous"] == "1" && change["version"] == "2")
            let (_, resolved) = try await Self.json(client, "/api/models/det/aliases/champion")
            #expect(resolved["version"] == "2")
            let (rolled, back) = try await Self.json(client, "/api/models/det/aliases/champion/rollback", .post)
            #expect(rolled == 200 && back["version"] == "1" && back["previous"] == "2")
            let (_, shown) = try await Self.json(client, "/api/models/det")
            #expect(shown["model"]?["aliases"]?["champion"] == "1")
            #expect(shown["history"]?.arrayValue?.map { $0["reason"]?.stringValue ?? "" } == ["rollback from 2", "alias", "register"])

            // The weights come back by version, with their hash.
            try await client.execute(uri: "/api/models/det/versions/2/weights", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "weights of b")
                #expect(response.headers[HTTPField.Name("X-Content-SHA256")!] == SHA256.hash(data: Data("weights of b".utf8)).hex)
            }
            let (missing, _) = try await Self.json(client, "/api/models/det/versions/7/weights")
            #expect(missing == 404)
            let (unknown, error) = try await Self.json(client, "/api/models/nope/aliases/production")
            #expect(unknown == 404, "\(error)")
        }
    }

    /// Weights are streamed from disk in chunks (128 KB): a file of several
    /// chunks, downloaded by many clients at once, arrives whole and in order.
    @Test func weightsOfSeveralChunksStreamWholeToManyClients() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let weights = (0..<60_000).map { "chunk line \($0)\n" }.joined()  // ~900 KB: 7 chunks
        try await Self.succeededJob(t, "job-big", weights: weights)
        try await t.test { client in
            let (status, _) = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-big", "name": "big"}"#)
            #expect(status == 201)
            let expected = SHA256.hash(data: Data(weights.utf8)).hex
            let results = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?, Int, String).self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        try await client.execute(uri: "/api/models/big/versions/1/weights", method: .get) { response in
                            (response.status, response.headers[.contentLength], response.body.readableBytes,
                             SHA256.hash(data: Data(buffer: response.body)).hex)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == 20)
            for (status, length, size, digest) in results {
                #expect(status == .ok)
                #expect(length == String(weights.utf8.count) && size == weights.utf8.count)
                #expect(digest == expected)
            }
        }
    }

    /// `production` is served: it moves only to a version that loaded and
    /// answered its health check. Here no predictor can start (the engine's
    /// Python does not exist), so the move is refused with the reason, the
    /// alias stays, and the version says why.
    @Test func aServedAliasStaysWhenTheNewVersionFailsItsHealthCheck() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await Self.succeededJob(t, "job-h", weights: "w")
        try await t.test { client in
            let (_, v1) = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-h", "name": "swap"}"#)
            #expect(v1["version"] == "1")
            let (status, error) = try await Self.json(client, "/api/models/swap/aliases", .post, #"{"alias": "production", "version": "1"}"#)
            #expect(status == 409, "\(error)")
            let message = error["message"]?.stringValue ?? ""
            #expect(message.contains("failed its health check") && message.contains("production stays unset"), "\(message)")
            #expect(message.contains("nonexistent"), "the predictor's own last words: \(message)")
            let (_, list) = try await Self.json(client, "/api/models?name=swap")
            #expect(list["versions"]?[0]?["aliases"] == [])
            #expect(list["versions"]?[0]?["health"]?["ok"] == .bool(false))
            #expect(list["versions"]?[0]?["health"]?["reason"]?.stringValue?.contains("nonexistent") == true)
            // An alias no request has named is not checked: it moves.
            let (staging, _) = try await Self.json(client, "/api/models/swap/aliases", .post, #"{"alias": "staging", "version": "1"}"#)
            #expect(staging == 200)
        }
    }

    /// `deploy:` registers every succeeded job and moves the alias only to a
    /// version that beats the one holding it by more than the margin; each
    /// decision is a `deployment` event, made once per job (a restarted
    /// server does not decide again, nor undo a move made by hand).
    @Test func deployPromotesOnlyAVersionThatBeatsTheOneHoldingTheAlias() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let deploy = "deploy: {model: det, alias: champion, min_improvement: 0.01}"
        let registry = t.yard.models
        func decisions(_ id: String) async throws -> [JSONValue] {
            try await t.yard.store.events(of: id, after: 0, limit: 100).filter { $0.type == "deployment" }.map(\.payload)
        }
        func champion() async throws -> String? {
            try await t.yard.store.modelVersions(name: "det").first { $0.aliases.contains("champion") }?.version
        }
        let auto = AutoRegistration(registry: registry, logger: TestYard.quiet)
        try await Self.succeededJob(t, "d1", weights: "w1", extra: deploy, mAP: 0.5, at: 1)
        #expect(await auto.scan().map(\.version) == ["1"])
        #expect(try await champion() == "1")
        #expect(try await decisions("d1").first?["reason"]?.stringValue == "no version holds champion yet")

        try await Self.succeededJob(t, "d2", weights: "w2", extra: deploy, mAP: 0.505, at: 2)
        try await Self.succeededJob(t, "d3", weights: "w3", extra: deploy, mAP: 0.6, at: 3)
        try await Self.succeededJob(t, "d4", weights: "w4", extra: deploy, mAP: nil, at: 4)
        try await Self.succeededJob(t, "plain", weights: "w5", at: 5)
        #expect(await auto.scan().map(\.version) == ["2", "3", "4"], "in the order they were made; the plain job is not registered")
        #expect(try await champion() == "3")
        let d2 = try #require(try await decisions("d2").first)
        #expect(d2["promoted"] == .bool(false) && d2["current_version"] == "1", "\(d2)")
        #expect(d2["reason"]?.stringValue?.contains("does not beat version 1's 0.5 by more than 0.01") == true, "\(d2)")
        #expect(try await decisions("d3").first?["promoted"] == .bool(true))
        #expect(try await decisions("d4").first?["reason"]?.stringValue == "the job has no metrics/mAP50-95(B) to compare")
        let moves = try await t.yard.store.aliasHistory(name: "det", alias: "champion", limit: 10)
        #expect(moves.first?.reason.hasPrefix("deploy: metrics/mAP50-95(B) 0.6 beats version 1's 0.5") == true, "\(moves)")

        // A move by hand, then a restarted server: nothing is decided again.
        try await registry.setAlias(name: "det", version: "1", alias: "champion", reason: "alias")
        let restarted = AutoRegistration(registry: registry, logger: TestYard.quiet)
        #expect(await restarted.scan().isEmpty)
        #expect(try await champion() == "1")
        for id in ["d1", "d2", "d3", "d4"] { #expect(try await decisions(id).count == 1, "\(id)") }
    }

    /// Rollbacks undo moves in turn, and bring back a removed alias.
    @Test func rollbacksWalkBackThroughTheMovesAndRestoreARemovedAlias() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        let registry = t.yard.models
        for index in 1...3 {
            try await Self.succeededJob(t, "r\(index)", weights: "w\(index)", at: Double(index))
            _ = try await registry.register(jobID: "r\(index)", name: "rb", alias: nil)
            try await registry.setAlias(name: "rb", version: "\(index)", alias: "champion", reason: "alias")
        }
        #expect(try await registry.rollback(name: "rb", alias: "champion").version == "2")
        #expect(try await registry.rollback(name: "rb", alias: "champion").version == "1", "not back to 3")
        await #expect(throws: YardError.self) { try await registry.rollback(name: "rb", alias: "champion") }
        try await registry.setAlias(name: "rb", version: nil, alias: "champion", reason: "removed")
        let restored = try await registry.rollback(name: "rb", alias: "champion")
        #expect(restored.version == "1" && restored.reason == "rollback from (removed)")
    }

    /// `register_alias` is applied when the server registers a job, once: a
    /// restarted server does not move the alias back to it.
    @Test func aRestartedServerDoesNotMoveRegisterAliasBack() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        try await Self.succeededJob(t, "a1", weights: "w1", extra: "mlflow: {register_model: auto, register_alias: champion}", at: 1)
        try await Self.succeededJob(t, "a2", weights: "w2", at: 2)
        #expect(await AutoRegistration(registry: t.yard.models, logger: TestYard.quiet).scan().map(\.version) == ["1"])
        _ = try await t.yard.models.register(jobID: "a2", name: "auto", alias: "champion")
        #expect(await AutoRegistration(registry: t.yard.models, logger: TestYard.quiet).scan().isEmpty)
        #expect(try await t.yard.store.modelVersions(name: "auto").first { $0.aliases.contains("champion") }?.version == "2")
    }

    /// The server's S3 keys sign requests to the server's own endpoint only:
    /// a job whose `minio:` names another endpoint without keys of its own
    /// gets no S3 location (its weights come from elsewhere, or not at all).
    @Test func theServersS3KeysNeverGoToAnEndpointAJobChose() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let own = ["MINIO_ENDPOINT": "http://own.example:9000", "MINIO_ID": "server-id", "MINIO_SECRET_KEY": "server-secret"]
        let cache = WeightsCache(root: t.dir.file("models"), artifacts: LocalArtifactStore(root: t.dir.file("artifacts")), store: t.yard.store, environment: own)
        try await Self.succeededJob(t, "evil", weights: "w", extra: "minio: {MINIO_ENDPOINT: 'http://127.0.0.1:1/evil', MINIO_BUCKET: b}", at: 1)
        try await Self.succeededJob(t, "same", weights: "w", extra: "minio: {MINIO_ENDPOINT: 'http://own.example:9000', MINIO_BUCKET: theirs}", at: 2)
        try await Self.succeededJob(t, "keys", weights: "w", extra: "minio: {MINIO_ENDPOINT: 'http://other:9000', MINIO_ID: i, MINIO_SECRET_KEY: k}", at: 3)
        try await Self.succeededJob(t, "none", weights: "w", at: 4)
        func s3(_ id: String) async throws -> WeightsLocation? {
            try await cache.candidates(for: try await t.yard.store.require(id)).first { $0.kind == .s3 }
        }
        #expect(try await s3("evil") == nil)
        #expect(try await s3("same")?.bucket == "theirs")
        #expect(try await s3("keys")?.endpoint == "http://other:9000", "the job's own keys for its own endpoint")
        #expect(try await s3("none")?.endpoint == "http://own.example:9000")
    }

    /// A version the old MLflow mirror recorded (no weights hash) gets its
    /// weights named when its job is registered again, and can be served.
    @Test func aVersionFromBeforeTheRegistryOfRecordGetsItsWeightsNamed() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        try await Self.succeededJob(t, "old", weights: "old weights")
        let mirrored = ModelVersion(name: "legacy", version: "", jobID: "old", runID: "r", source: "mlflow-artifacts:/1/r/artifacts/weights/best.pt",
                                    createdAt: Date())
        _ = try await t.yard.store.createModelVersion(mirrored)
        let (version, created) = try await t.yard.models.register(jobID: "old", name: "legacy", alias: nil)
        #expect(!created && version.version == "1")
        #expect(version.sha256 == SHA256.hash(data: Data("old weights".utf8)).hex)
        #expect(try await t.yard.models.weights.file(for: version).hasSuffix("\(version.sha256 ?? "-").pt"))
    }

    /// The OpenAPI document is JSON and names every route the router has.
    @Test func theOpenAPIDocumentDescribesThePredictSchema() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            let (status, document) = try await Self.json(client, "/api/openapi.json")
            #expect(status == 200)
            #expect(document["openapi"] == "3.1.0")
            let paths = Set((document["paths"]?.objectValue ?? [:]).keys)
            for route in AuthTests.routes {
                let templated = route.path.replacingOccurrences(of: "/j1", with: "/{id}").replacingOccurrences(of: "/s/", with: "/{id}/")
                    .replacingOccurrences(of: "/api/sweeps/s", with: "/api/sweeps/{id}").replacingOccurrences(of: "/m/", with: "/{name}/")
                    .replacingOccurrences(of: "/api/models/m", with: "/api/models/{name}").replacingOccurrences(of: "/api/predict/m", with: "/api/predict/{name}")
                    .replacingOccurrences(of: "/d/", with: "/{name}/").replacingOccurrences(of: "/api/datasets/d", with: "/api/datasets/{name}")
                    .replacingOccurrences(of: "/aliases/champion", with: "/aliases/{alias}").replacingOccurrences(of: "/versions/1", with: "/versions/{version}")
                #expect(paths.contains(templated), "\(route.path) → \(templated) is not in the OpenAPI document")
            }
            let box = document["components"]?["schemas"]?["Box"]?["required"]?.arrayValue?.compactMap(\.stringValue)
            #expect(box == ["class", "name", "score", "xyxy", "xyxyn"])
        }
    }

    /// Weights changed where they are kept after registration are not
    /// served: the hash says so, the cache is not filled with them.
    @Test func weightsThatChangedWhereTheyAreKeptAreRefused() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await Self.succeededJob(t, "job-c", weights: "original")
        try await t.test { client in
            let (status, v1) = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-c", "name": "tampered"}"#)
            #expect(status == 201)
            let sha = try #require(v1["sha256"]?.stringValue)
            try FileManager.default.removeItem(atPath: t.dir.file("models/sha256/\(sha.prefix(2))/\(sha).pt"))
            _ = try t.dir.write("artifacts/job-c/weights/best.pt", "swapped")
            let (refused, error) = try await Self.json(client, "/api/models/tampered/versions/1/weights")
            #expect(refused == 409, "\(error)")
            #expect(error["message"]?.stringValue?.contains("changed where they are kept") == true)
            #expect(!FileManager.default.fileExists(atPath: t.dir.file("models/sha256/\(sha.prefix(2))/\(sha).pt")))
        }
    }

    @Test func registeringWhatCannotBeRegisteredIsAClearError() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await Self.succeededJob(t, "job-d", weights: "w")
        try FileManager.default.removeItem(atPath: t.dir.file("artifacts/job-d/weights/best.pt"))
        try await t.test { client in
            let (gone, error) = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-d", "name": "m"}"#)
            #expect(gone == 404 && error["message"]?.stringValue?.contains("best weights") == true, "\(error)")
            let (badName, _) = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-d", "name": "../x"}"#)
            #expect(badName == 400)
            let (noJob, _) = try await Self.json(client, "/api/models", .post, #"{"job_id": "nope", "name": "m"}"#)
            #expect(noJob == 404)
            let (noRollback, _) = try await Self.json(client, "/api/models/m/aliases/production/rollback", .post)
            #expect(noRollback == 404)
        }
    }

    /// Every bad predict request is a 4xx with a message, decided before a
    /// predictor is asked (none can start here).
    /// Per-model preprocessing: off until set, validated field by field,
    /// replaced whole; an export in an unknown format, or one the engine
    /// cannot make, is a one-line error and leaves the version as it was.
    @Test func settingsAndExportsAreCheckedAndKeptPerModel() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await Self.succeededJob(t, "job-s", weights: "w")
        try await t.test { client in
            _ = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-s", "name": "faces"}"#)
            let (status, off) = try await Self.json(client, "/api/models/faces/settings")
            #expect(status == 200 && off == ["blur_faces": .null])
            let (set, on) = try await Self.json(client, "/api/models/faces/settings", .put, #"{"blur_faces": {"min_neighbors": 3}}"#)
            #expect(set == 200 && on["blur_faces"]?["min_neighbors"] == .int(3) && on["blur_faces"]?["scale_factor"] == .double(1.1), "\(on)")
            #expect(try await t.yard.store.modelSettings(name: "faces")?.blurFaces?.minNeighbors == 3)
            let bad: [(String, String)] = [
                (#"{"blur_faces": {"scale_factor": 1}}"#, "blur_faces.scale_factor"),
                (#"{"blur_faces": {"min_size": 2}}"#, "blur_faces.min_size"),
                (#"{"blur_faces": {"min_neighbors": "five"}}"#, "blur_faces"),
                (#"{"blurFaces": {}}"#, "blur_faces: missing"),
                (#"{"blur_faces": {}, "blur_face": {}}"#, "blur_face: is not a model setting"),
                (#"{"blur_faces": {"minNeighbors": 2}}"#, "blur_faces.minNeighbors"),
                (#"{}"#, "blur_faces: missing"),
                (#"[1]"#, "blur_faces: missing"),
            ]
            for (body, field) in bad {
                let (code, error) = try await Self.json(client, "/api/models/faces/settings", .put, body)
                #expect(code == 400 && error["message"]?.stringValue?.contains(field) == true, "\(body): \(error)")
            }
            #expect(try await t.yard.store.modelSettings(name: "faces")?.blurFaces?.minNeighbors == 3, "a refused change changes nothing")
            let (unknown, _) = try await Self.json(client, "/api/models/nope/settings", .put, #"{"blur_faces": null}"#)
            #expect(unknown == 404)
            let (cleared, none) = try await Self.json(client, "/api/models/faces/settings", .put, #"{"blur_faces": null}"#)
            #expect(cleared == 200 && none == ["blur_faces": .null])

            let (format, formatError) = try await Self.json(client, "/api/models/faces/versions/1/export?format=tensorrt", .post)
            #expect(format == 400 && formatError["message"]?.stringValue?.contains("use onnx") == true, "\(formatError)")
            let (missing, _) = try await Self.json(client, "/api/models/faces/versions/7/export", .post)
            #expect(missing == 404)
            // This server's engine cannot run: the export fails in one line and nothing is recorded.
            let (failed, failure) = try await Self.json(client, "/api/models/faces/versions/1/export", .post)
            #expect(failed == 503, "\(failure)")
            #expect(failure["message"]?.stringValue?.contains("\n") == false)
            #expect(try await t.yard.store.modelVersions(name: "faces").first?.exports == nil)
            let (noFile, _) = try await Self.json(client, "/api/models/faces/versions/1/weights?format=onnx")
            #expect(noFile == 404)
        }
    }

    @Test func badPredictRequestsAre4xxBeforeAnyPredictorStarts() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await Self.succeededJob(t, "job-e", weights: "w")
        let jpeg = TestImages.jpeg(width: 20, height: 16)
        try await t.test { client in
            _ = try await Self.json(client, "/api/models", .post, #"{"job_id": "job-e", "name": "served"}"#)
            func predict(_ uri: String, _ body: [UInt8], _ type: String?) async throws -> (Int, String) {
                var headers = HTTPFields()
                if let type { headers[.contentType] = type }
                return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(bytes: body)) { response in
                    (Int(response.status.code), String(buffer: response.body))
                }
            }
            let cases: [(String, [UInt8], String?, Int, String)] = [
                ("/api/predict/nope", jpeg, "image/jpeg", 404, "no model nope"),
                ("/api/predict/served?version=9", jpeg, "image/jpeg", 404, "no version 9"),
                ("/api/predict/served?alias=staging", jpeg, "image/jpeg", 404, "no alias staging"),
                ("/api/predict/served", Array("not an image".utf8), "image/jpeg", 400, "not an image"),
                ("/api/predict/served", jpeg, "text/plain", 415, "is not an image"),
                ("/api/predict/served", jpeg, nil, 415, "(none)"),
                ("/api/predict/served", [], "image/png", 400, "empty"),
                ("/api/predict/served?conf=2", jpeg, "image/jpeg", 400, "conf"),
                ("/api/predict/served?imgsz=abc", jpeg, "image/jpeg", 400, "imgsz"),
                ("/api/predict/served?classes=1,x", jpeg, "image/jpeg", 400, "classes"),
                ("/api/predict/served?version=1&alias=production", jpeg, "image/jpeg", 400, "not both"),
                ("/api/predict/served", TestImages.jpeg(width: 9000, height: 20), "image/jpeg", 400, "at most 8000 pixels"),
                ("/api/predict/served", jpeg + [UInt8](repeating: 0, count: 21 << 20), "image/jpeg", 413, "MB"),
                ("/api/predict/served", Array(TestImages.jpeg(width: 5, height: 5)), "image/jpeg", 400, "under 10 pixels"),
                ("/api/predict/served?runtime=tensorrt", jpeg, "image/jpeg", 400, "runtime"),
                ("/api/predict/served?runtime=onnx", jpeg, "image/jpeg", 409, "yard models export served 1 --format onnx"),
            ]
            for (uri, body, type, status, text) in cases {
                let (got, message) = try await predict(uri, body, type)
                #expect(got == status, "\(uri) \(type ?? "-"): \(message)")
                #expect(message.contains(text), "\(uri): \(message)")
                #expect(!message.contains("Error("), "one line, no dump: \(message)")
            }
            // Multipart: too many images, and a part that is not one.
            var many = Data()
            for index in 0..<17 {
                many += Data("--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"\(index).jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".utf8)
                many += Data(jpeg) + Data("\r\n".utf8)
            }
            many += Data("--B--\r\n".utf8)
            let (tooMany, manyMessage) = try await predict("/api/predict/served", Array(many), "multipart/form-data; boundary=B")
            #expect(tooMany == 400 && manyMessage.contains("at most 16"), "\(manyMessage)")
            let bad = Data("--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n".utf8) + Data(jpeg) +
                Data("\r\n--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"b.txt\"\r\n\r\nhello\r\n--B--\r\n".utf8)
            let (second, secondMessage) = try await predict("/api/predict/served", Array(bad), "multipart/form-data; boundary=B")
            #expect(second == 400 && secondMessage.contains("image 2"), "\(secondMessage)")
            let (noBoundary, _) = try await predict("/api/predict/served", jpeg, "multipart/form-data")
            #expect(noBoundary == 400)
            // 16 photos of 12 MP (about 576 MB decoded, 2 KB sent) are over the
            // pixel budget: a 413 naming it, before any predictor starts.
            var large = Data()
            for index in 0..<16 {
                large += Data("--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"\(index).jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".utf8)
                large += Data(TestImages.jpeg(width: 4000, height: 3000, salt: UInt8(index))) + Data("\r\n".utf8)
            }
            large += Data("--B--\r\n".utf8)
            let (overBudget, budgetMessage) = try await predict("/api/predict/served", Array(large), "multipart/form-data; boundary=B")
            #expect(overBudget == 413 && budgetMessage.contains("192 megapixels") && budgetMessage.contains("at most 64 megapixels"), "\(budgetMessage)")
            // A multipart body over the request limit (64 MB) is refused before it is held whole.
            var huge = Data("--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n".utf8)
            huge += Data(count: 65 << 20) + Data("\r\n--B--\r\n".utf8)
            let (tooBig, bigMessage) = try await predict("/api/predict/served", Array(huge), "multipart/form-data; boundary=B")
            #expect(tooBig == 413 && bigMessage.contains("over 64 MB"), "\(bigMessage)")

            // Each refusal is counted by the name the registry knows, never by what the client sent.
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                #expect(text.contains("yard_predict_requests_total{model=\"_unknown\",version=\"\",code=\"404\"} 3"), "unknown model, version and alias: \(text)")
                #expect(text.contains("yard_predict_requests_total{model=\"served\",version=\"1\",code=\"400\"}"), "\(text)")
                #expect(text.contains("yard_predict_errors_total{model=\"served\",code=\"413\"} 3"), "\(text)")
                #expect(text.contains("yard_predict_duration_seconds_count{model=\"served\"}"))
                #expect(!text.contains("nope"))
                #expect(text.contains("yard_jobs{state=\"succeeded\"} 1") && text.contains("yard_jobs{state=\"queued\"} 0"))
            }
        }
    }
}
