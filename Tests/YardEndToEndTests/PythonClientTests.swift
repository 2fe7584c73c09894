import Foundation
import Testing
import YardDomain
import YardTestSupport

extension EndToEnd {
/// Issue 29: the Python client that ships with the engine (engine/trainyard)
/// against a live `yard up` with a token, as a notebook uses it: submit a
/// config file, follow its epochs, wait, download the weights; a bad config
/// is an APIError naming the field. Then the server's answers to a set of
/// real requests are validated against its own OpenAPI document.
@Suite("Python client")
struct PythonClientTests {
    static let engineDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("engine").path
    static let servicesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("services").path

    static let script = #"""
        import json, os, sys
        from trainyard import APIError, Client
        c = Client(os.environ["BASE"], os.environ["TOKEN"], timeout=60)
        out = {}
        try:
            Client(os.environ["BASE"], "wrong-token").jobs()
        except APIError as e:
            out["unauthorized"] = {"status": e.status, "text": str(e)}
        job = c.submit(os.environ["CONFIG"])
        out["id"] = job["id"]
        out["epochs"] = [e["epoch"] for e in c.epochs(job["id"])]
        done = c.wait(job["id"], timeout=600)
        out["state"] = done["state"]
        out["listed"] = job["id"] in [j["id"] for j in c.jobs(state="succeeded")]
        path = c.download_weights(job["id"], os.environ["WEIGHTS"])
        out["weights"] = path
        import torch
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        out["checkpoint_epoch"] = checkpoint.get("epoch")
        out["has_model"] = checkpoint.get("model") is not None
        try:
            c.submit({"model": "yolov8n.yaml", "train": {"data": os.environ["DATA"], "epochs": 0}})
        except APIError as e:
            out["bad"] = {"status": e.status, "field": e.field, "text": str(e)}
        try:
            c.download_weights("no-such-job", os.environ["WEIGHTS"] + ".missing")
        except APIError as e:
            out["missing"] = {"status": e.status, "text": str(e), "left": os.path.exists(os.environ["WEIGHTS"] + ".missing")}
        print(json.dumps(out))
        """#

    @Test func aNotebookSubmitsFollowsWaitsAndDownloadsWeightsAndEveryAnswerMatchesTheSpec() async throws {
        let h = try YardHarness("pyclient")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 16, val: 8)
        // A relative train.data, resolved by the client against the config's folder.
        let config = try h.dir.write("cfg.yaml", TrainingTests.detectConfig(data: "demo-detect/data.yaml", epochs: 2))
        let token = "tok-" + UUID().uuidString
        let yard = try await h.serving(["up", "--port", "0", "--data-dir", h.data, "--python", h.python, "--stop-grace", "60"],
                                       environment: ["YARD_TOKEN": token], log: "up")
        defer { yard.process.terminate() }

        let weights = h.dir.file("best.pt")
        let output = try runPython(h.python, Self.script, env: [
            "PYTHONPATH": Self.engineDirectory, "BASE": yard.base, "TOKEN": token, "CONFIG": config, "DATA": data,
            "WEIGHTS": weights, "YOLO_OFFLINE": "1",
        ])
        let line = try #require(output.split(separator: "\n").last, "\(output)")
        let result = try #require(try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)), "\(output.suffix(3000))")
        let id = try #require(result["id"]?.stringValue)
        #expect(result["unauthorized"]?["status"] == 401)
        #expect(result["epochs"]?.arrayValue?.compactMap(\.intValue) == [1, 2], "\(result)")
        #expect(result["state"] == "succeeded")
        #expect(result["listed"] == true)
        #expect(result["weights"]?.stringValue == weights)
        #expect(result["has_model"] == true)
        // The same bytes the training stored in the server's artifact folder.
        #expect(FileManager.default.contents(atPath: weights) == FileManager.default.contents(atPath: h.data + "/artifacts/\(id)/weights/best.pt"))
        #expect(result["bad"]?["status"] == 400)
        #expect(result["bad"]?["field"] == "train.epochs")
        #expect(result["bad"]?["text"]?.stringValue?.hasPrefix("HTTP 400: train.epochs: ") == true, "\(result)")
        #expect(result["missing"]?["status"] == 404)
        #expect(result["missing"]?["left"] == false)
        for key in ["unauthorized", "bad", "missing"] {
            #expect(result[key]?["text"]?.stringValue?.contains("\n") == false, "\(key): one line")
        }

        // The server's answers to real requests, each against its operation's schema.
        struct Case: Encodable { let method: String, path: String, template: String, status: Int; var body: JSONValue? = nil; var token: String? = nil; var save: String? = nil }
        let cases = [
            Case(method: "GET", path: "/api/jobs", template: "/api/jobs", status: 200),
            Case(method: "GET", path: "/api/jobs?state=bogus", template: "/api/jobs", status: 400),
            Case(method: "GET", path: "/api/jobs", template: "/api/jobs", status: 401, token: "wrong-token"),
            Case(method: "POST", path: "/api/jobs", template: "/api/jobs", status: 400, body: ["model": "yolov8n.yaml"]),
            Case(method: "GET", path: "/api/jobs/\(id)", template: "/api/jobs/{id}", status: 200),
            Case(method: "GET", path: "/api/jobs/no-such-job", template: "/api/jobs/{id}", status: 404),
            Case(method: "GET", path: "/api/jobs/\(id)/events", template: "/api/jobs/{id}/events", status: 200),
            Case(method: "GET", path: "/api/events?follow=false", template: "/api/events", status: 200),
            Case(method: "GET", path: "/api/events/head", template: "/api/events/head", status: 200),
            Case(method: "GET", path: "/api/sweeps", template: "/api/sweeps", status: 200),
            Case(method: "GET", path: "/api/sweeps/no-such-sweep", template: "/api/sweeps/{id}", status: 404),
            Case(method: "GET", path: "/api/datasets", template: "/api/datasets", status: 200),
            Case(method: "GET", path: "/api/workers", template: "/api/workers", status: 200),
            Case(method: "POST", path: "/api/models", template: "/api/models", status: 201, body: ["job_id": .string(id), "name": "det"]),
            Case(method: "GET", path: "/api/models", template: "/api/models", status: 200),
            Case(method: "GET", path: "/api/models/det/settings", template: "/api/models/{name}/settings", status: 200),
            Case(method: "GET", path: "/api/webhooks", template: "/api/webhooks", status: 200),
            Case(method: "GET", path: "/api/session", template: "/api/session", status: 200),
            Case(method: "GET", path: "/api/users", template: "/api/users", status: 200),
            Case(method: "GET", path: "/api/tokens", template: "/api/tokens", status: 200),
            Case(method: "GET", path: "/api/audit", template: "/api/audit", status: 200),
            Case(method: "GET", path: "/health", template: "/health", status: 200),
            Case(method: "GET", path: "/ready", template: "/ready", status: 200),
            Case(method: "GET", path: "/api/lineage/\(id)", template: "/api/lineage/{ref}", status: 200),
            // The registry's reads and alias moves, success and refusal.
            Case(method: "GET", path: "/api/models/det", template: "/api/models/{name}", status: 200),
            Case(method: "GET", path: "/api/models/no-such-model", template: "/api/models/{name}", status: 404),
            Case(method: "POST", path: "/api/models/det/aliases", template: "/api/models/{name}/aliases", status: 200, body: ["alias": "staging", "version": "1"]),
            Case(method: "GET", path: "/api/models/det/aliases/staging", template: "/api/models/{name}/aliases/{alias}", status: 200),
            Case(method: "POST", path: "/api/models/det/aliases/staging/rollback", template: "/api/models/{name}/aliases/{alias}/rollback", status: 409),
            Case(method: "DELETE", path: "/api/models/det/aliases/staging", template: "/api/models/{name}/aliases/{alias}", status: 200),
            Case(method: "GET", path: "/api/models/det/aliases/staging", template: "/api/models/{name}/aliases/{alias}", status: 404),
            Case(method: "DELETE", path: "/api/models/det/aliases/staging", template: "/api/models/{name}/aliases/{alias}", status: 404),
            Case(method: "GET", path: "/api/serving", template: "/api/serving", status: 200),
            // A viewer reads and is refused every change with the document's 403.
            Case(method: "POST", path: "/api/users", template: "/api/users", status: 201, body: ["name": "vera", "role": "viewer"]),
            Case(method: "POST", path: "/api/tokens", template: "/api/tokens", status: 201, body: ["user": "vera"], save: "vera"),
            Case(method: "GET", path: "/api/jobs/\(id)", template: "/api/jobs/{id}", status: 200, token: "${vera.token}"),
            Case(method: "POST", path: "/api/jobs/\(id)/stop", template: "/api/jobs/{id}/stop", status: 403, token: "${vera.token}"),
            Case(method: "POST", path: "/api/models/det/aliases", template: "/api/models/{name}/aliases", status: 403,
                 body: ["alias": "staging", "version": "1"], token: "${vera.token}"),
            Case(method: "GET", path: "/api/users", template: "/api/users", status: 403, token: "${vera.token}"),
        ]
        let file = h.dir.file("cases.json")
        try JSONEncoder().encode(cases).write(to: URL(fileURLWithPath: file))
        let services = try #require(ProcessInfo.processInfo.environment["YARD_SERVICES"], "YARD_SERVICES is not set; run scripts/test.sh")
        let checked = try runPython(services + "/bin/python", "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                                    env: ["YARD_TOKEN": token], arguments: [Self.servicesDirectory + "/validate_responses.py", yard.base, file])
        let report = try #require(try? JSONDecoder().decode(JSONValue.self, from: Data((checked.split(separator: "\n").last ?? "").utf8)), "\(checked.suffix(3000))")
        let problems = report["problems"]?.arrayValue?.compactMap(\.stringValue) ?? ["no report"]
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        #expect((report["checked"]?.intValue ?? 0) >= cases.count, "\(report)")
    }

    /// A common generator (openapi-python-client, in the test services'
    /// venv) accepts the served document: every operation becomes a
    /// function, and the generated client submits, lists and reads a job;
    /// an error answer is parsed as the document's Error.
    @Test func aClientGeneratedFromTheServedDocumentSubmitsListsAndReadsAJob() async throws {
        let services = try #require(ProcessInfo.processInfo.environment["YARD_SERVICES"], "YARD_SERVICES is not set; run scripts/test.sh")
        let h = try YardHarness("generated")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 8, val: 4)
        let token = "tok-" + UUID().uuidString
        let yard = try await h.serving(["up", "--port", "0", "--data-dir", h.data, "--python", h.python, "--stop-grace", "5"],
                                       environment: ["YARD_TOKEN": token], log: "up")
        defer { yard.process.terminate() }
        let spec = h.dir.file("openapi.json")
        _ = try runPython(services + "/bin/python", "import sys, urllib.request; r = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2]}); open(sys.argv[3], 'wb').write(urllib.request.urlopen(r).read())",
                          env: [:], arguments: [yard.base + "/api/openapi.json", token, spec])
        let generated = h.dir.file("generated")
        try FileManager.default.createDirectory(atPath: generated, withIntermediateDirectories: true)
        let generator = try runPython(services + "/bin/python", "import sys; from openapi_python_client.cli import app; sys.argv = ['openapi-python-client'] + sys.argv[1:]; app()",
                                      env: [:], arguments: ["generate", "--path", spec, "--meta", "none", "--output-path", generated + "/trainyard_client"])
        #expect(FileManager.default.fileExists(atPath: generated + "/trainyard_client/api/default/submit_job.py"), "\(generator.suffix(3000))")
        let output = try runPython(services + "/bin/python", "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                                   env: ["BASE": yard.base, "YARD_TOKEN": token, "DATA": data],
                                   arguments: [Self.servicesDirectory + "/generated_client_check.py", spec, generated])
        let result = try #require(try? JSONDecoder().decode(JSONValue.self, from: Data((output.split(separator: "\n").last ?? "").utf8)), "\(output.suffix(3000))")
        #expect((result["operations"]?.intValue ?? 0) >= 46)
        #expect(result["missing_operations"] == [], "\(result)")
        let id = try #require(result["submitted"]?.stringValue)
        #expect(result["state"] == "queued")
        #expect(result["listed"]?.arrayValue?.contains(.string(id)) == true)
        #expect(result["detail"]?["id"]?.stringValue == id)
        #expect(result["bad"]?["type"] == "Error" && result["bad"]?["field"] == "train.epochs", "\(result)")
        #expect(result["missing"] == "Error")
    }
}
}
