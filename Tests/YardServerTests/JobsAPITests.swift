import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Testing
import YardDomain
import YardStore
import YardTestSupport

@Suite("Jobs API")
struct JobsAPITests {
    @Test func healthIsOpen() async throws {
        let t = try TestYard(token: "secret-token")
        defer { t.dir.remove() }
        try await t.test { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.json["status"] == "ok")
            }
        }
    }

    @Test func submitYAMLThenReadItBackRedacted() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let config = t.config("minio: {MINIO_SECRET_KEY: hunter2, MINIO_ID: me}\ntask_id: first")
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post, headers: [.contentType: "application/yaml"],
                                     body: ByteBuffer(string: config)) { response in
                #expect(response.status == .created)
                #expect(response.json["id"] == "first")
                #expect(response.json["state"] == "queued")
            }
            try await client.execute(uri: "/api/jobs/first", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.json["state"] == "queued")
                #expect(response.json["config"]?["minio"]?["MINIO_SECRET_KEY"] == "***")
                #expect(response.json["epoch_metrics"] == [])
                #expect(!response.text.contains("hunter2"))
            }
            try await client.execute(uri: "/api/jobs", method: .get) { response in
                #expect(response.json["jobs"]?.arrayValue?.count == 1)
                #expect(!response.text.contains("hunter2"))
            }
            try await client.execute(uri: "/api/jobs?state=queued", method: .get) { response in
                #expect(response.json["jobs"]?.arrayValue?.count == 1)
            }
            try await client.execute(uri: "/api/jobs?state=succeeded", method: .get) { response in
                #expect(response.json["jobs"]?.arrayValue?.count == 0)
            }
        }
    }

    @Test func submitJSONGetsAGeneratedID() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let body = #"{"model": "yolov8n.yaml", "train": {"data": "\#(t.data)", "epochs": 2}}"#
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: body)) { response in
                #expect(response.status == .created)
                let id = response.json["id"]?.stringValue ?? ""
                #expect(id.hasPrefix("job-"))
                #expect(JobID.isValid(id))
            }
        }
    }

    @Test(arguments: [
        ("model: yolov8n.yaml\ntrain: {data: /nope/data.yaml}", "train.data"),
        ("model: yolov8n.yaml\nfoo: 1\ntrain: {data: /nope}", "foo"),
        ("model: [", "body"),
        ("", "body"),
    ])
    func badConfigsAre400WithTheField(body: String, field: String) async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .badRequest)
                #expect(response.json["error"] == "invalid_input")
                #expect(response.json["field"]?.stringValue == field)
                #expect(response.json["message"]?.stringValue?.contains("\n") == false)
            }
            try await client.execute(uri: "/api/jobs", method: .get) { response in
                #expect(response.json["jobs"] == [], "nothing was queued")
            }
        }
    }

    @Test func duplicateTaskIDIs409AndHugeBodyIs400() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let config = t.config("task_id: same")
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: config)) { #expect($0.status == .created) }
            try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: config)) { response in
                #expect(response.status == .conflict)
                #expect(response.json["message"]?.stringValue?.contains("already exists") == true)
            }
            let huge = String(repeating: "#", count: 2 << 20)
            try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: huge)) { response in
                #expect(response.status == .badRequest)
                #expect(response.json["field"] == "body")
            }
        }
    }

    @Test func unknownJobsAre404Everywhere() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            for (uri, method) in [("/api/jobs/nope", HTTPRequest.Method.get), ("/api/jobs/nope/stop", .post), ("/api/jobs/nope/resume", .post),
                                  ("/api/jobs/nope/events", .get), ("/api/jobs/nope/logs", .get),
                                  ("/api/jobs/nope/weights", .get)] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .notFound, "\(uri)")
                    #expect(response.json["error"] == "not_found", "\(uri)")
                }
            }
            try await client.execute(uri: "/api/nothing-here", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/api/jobs?state=bogus", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(response.json["field"] == "state")
            }
        }
    }

    /// A client downloads a job's weights without registering a model:
    /// best by default, last on request; nothing else of the artifact
    /// folder is reachable through `which`.
    @Test func aJobsWeightsDownloadBestOrLastAndNothingElse() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            let id = try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: t.config("task_id: w1"))) { $0.json["id"]?.stringValue ?? "" }
            #expect(id == "w1")
            try await client.execute(uri: "/api/jobs/w1/weights", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.json["field"] == "which")
                #expect(response.json["message"]?.stringValue?.contains("no best weights (it is queued)") == true, "\(response.json)")
            }
            _ = try t.dir.write("artifacts/w1/weights/best.pt", "best bytes")
            _ = try t.dir.write("artifacts/w1/weights/last.pt", "last bytes")
            _ = try t.dir.write("artifacts/w1/results.csv", "epoch\n")
            try await client.execute(uri: "/api/jobs/w1/weights", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "best bytes")
                #expect(response.headers[.contentType] == "application/octet-stream")
                #expect(response.headers[.contentDisposition] == "attachment; filename=\"w1-best.pt\"")
            }
            try await client.execute(uri: "/api/jobs/w1/weights?which=last", method: .get) { #expect(String(buffer: $0.body) == "last bytes") }
            for hostile in ["../results.csv", "results", "best.pt", "", "..%2F..%2Fyard.sqlite"] {
                try await client.execute(uri: "/api/jobs/w1/weights?which=\(hostile)", method: .get) { response in
                    #expect(response.status == .badRequest, "\(hostile)")
                    #expect(response.json["field"] == "which", "\(hostile)")
                }
            }
        }
    }

    /// A job's artifact by name: only names its records hold are served
    /// (any other spelling is a 404 naming `name`, never another file);
    /// images and CSV inline, HTML or anything else only as a download.
    @Test func anArtifactIsServedByItsRecordedNameOnly() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            _ = try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: t.config("task_id: a1"))) { $0.status }
            _ = try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: t.config("task_id: a2"))) { $0.status }
            for (name, bytes) in [("results.png", "png bytes"), ("results.csv", "epoch\n1\n"), ("weights/best.pt", "best"), ("evil.html", "<script>1</script>")] {
                _ = try t.dir.write("artifacts/a1/\(name)", bytes)
                try await t.yard.store.recordArtifact(ArtifactRecord(jobID: "a1", key: "a1/\(name)", kind: "plot", size: Int64(bytes.utf8.count)))
            }
            _ = try t.dir.write("artifacts/a1/unrecorded.txt", "not listed")
            _ = try t.dir.write("artifacts/a2/results.png", "a2's")
            func get(_ id: String, _ name: String) async throws -> TestResponse {
                let encoded = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
                return try await client.execute(uri: "/api/jobs/\(id)/artifact?name=\(encoded)", method: .get)
            }
            let png = try await get("a1", "results.png")
            #expect(png.status == .ok && String(buffer: png.body) == "png bytes")
            #expect(png.headers[.contentType] == "image/png")
            #expect(png.headers[.contentDisposition] == "inline; filename=\"a1-results.png\"")
            #expect(try await get("a1", "results.csv").headers[.contentType] == "text/csv; charset=utf-8")
            let weights = try await get("a1", "weights/best.pt")
            #expect(String(buffer: weights.body) == "best" && weights.headers[.contentType] == "application/octet-stream")
            #expect(weights.headers[.contentDisposition] == "attachment; filename=\"a1-best.pt\"")
            let html = try await get("a1", "evil.html")
            #expect(html.headers[.contentType] == "application/octet-stream" && html.headers[.contentDisposition]?.hasPrefix("attachment") == true)
            #expect(html.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            for hostile in ["unrecorded.txt", "../a2/results.png", "../../yard.sqlite", "/etc/passwd", "./results.png", "results.png/", "RESULTS.PNG", "weights"] {
                let response = try await get("a1", hostile)
                #expect(response.status == .notFound, "\(hostile)")
                #expect(response.json["field"] == "name", "\(hostile)")
            }
            #expect(try await get("a2", "results.png").status == .notFound, "a2 recorded nothing")
            #expect(try await client.execute(uri: "/api/jobs/a1/artifact", method: .get).status == .badRequest)
            #expect(try await get("nope", "results.png").status == .notFound)
        }
    }

    /// The list filtered on the server by experiment and model, paged by
    /// the `next` cursor; a cursor naming no job is a 400 naming `before`.
    @Test func theListFiltersAndPagesWithNext() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            for index in 0..<5 {
                let extra = "task_id: f\(index)\nexperiment: \(index.isMultiple(of: 2) ? "even" : "odd")"
                _ = try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: t.config(extra))) { $0.status }
                try await Task.sleep(for: .milliseconds(5))  // distinct creation times
            }
            let even = try await client.execute(uri: "/api/jobs?experiment=even&limit=2", method: .get)
            #expect(even.json["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["f4", "f2"])
            #expect(even.json["next"] == "f2")
            let rest = try await client.execute(uri: "/api/jobs?experiment=even&limit=2&before=f2", method: .get)
            #expect(rest.json["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["f0"])
            #expect(rest.json["next"] == nil, "a page that is not full is the last")
            let model = try await client.execute(uri: "/api/jobs?model=yolov8n.yaml&experiment=odd", method: .get)
            #expect(model.json["jobs"]?.arrayValue?.count == 2)
            #expect(try await client.execute(uri: "/api/jobs?model=other.pt", method: .get).json["jobs"]?.arrayValue?.isEmpty == true)
            let bad = try await client.execute(uri: "/api/jobs?before=no-such-job", method: .get)
            #expect(bad.status == .badRequest && bad.json["field"] == "before")
        }
    }

    @Test func stopAndResumeFollowTheStateMachine() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let config = t.config("task_id: s1")
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: config)) { #expect($0.status == .created) }
            try await client.execute(uri: "/api/jobs/s1/stop", method: .post) { response in
                #expect(response.status == .ok)
                #expect(response.json["state"] == "stopped")
            }
            try await client.execute(uri: "/api/jobs/s1/stop", method: .post) { response in
                #expect(response.status == .conflict)
                #expect(response.json["error"] == "conflict")
            }
            try await client.execute(uri: "/api/jobs/s1/resume", method: .post) { response in
                #expect(response.status == .ok)
                #expect(response.json["state"] == "queued")
            }
            try await client.execute(uri: "/api/jobs/s1/resume", method: .post) { response in
                #expect(response.status == .conflict)
                #expect(response.json["message"]?.stringValue?.contains("only stopped or failed") == true)
            }
        }
    }

    @Test func aTokenIsRequiredOnTheAPIWhenSet() async throws {
        let t = try TestYard(token: "s3cr3t")
        defer { t.dir.remove() }
        let config = t.config()
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .get) { response in
                #expect(response.status == .unauthorized)
                #expect(response.json["error"] == "unauthorized")
            }
            try await client.execute(uri: "/api/jobs", method: .post, headers: [.authorization: "Bearer wrong"],
                                     body: ByteBuffer(string: config)) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/jobs", method: .post, headers: [.authorization: "Basic s3cr3t"],
                                     body: ByteBuffer(string: config)) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/jobs", method: .post, headers: [.authorization: "Bearer s3cr3t"],
                                     body: ByteBuffer(string: config)) { #expect($0.status == .created) }
            try await client.execute(uri: "/api/jobs", method: .get, headers: [.authorization: "Bearer s3cr3t"]) { response in
                #expect(response.status == .ok)
                #expect(response.json["jobs"]?.arrayValue?.count == 1)
            }
        }
    }

    @Test func anUnexpectedErrorIsA500WithoutInternals() async throws {
        let t = try TestYard(store: failingStore())
        defer { t.dir.remove() }
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .get) { response in
                #expect(response.status == .internalServerError)
                #expect(response.json["error"] == "internal")
                #expect(!response.text.contains("disk on fire"))
            }
        }
    }
}

/// A store whose every call fails with an error that must not reach a client.
func failingStore() -> FaultyJobStore {
    FaultyJobStore { _ in FaultyJobStore.Injected("disk on fire at /secret/path") }
}
