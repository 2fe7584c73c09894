import Foundation
import YardDomain

/// `GET /api/openapi.json`: the API's OpenAPI 3.1 description. The schemas
/// are written here as JSON; the paths are built below, each operation with
/// its id, parameters and responses, and a test walks the router and this
/// document and fails on any route, method or path parameter that one has
/// and the other lacks (OpenAPIAgreementTests).
enum OpenAPI {
    static let document: String = {
        guard case .object(var root) = try? JSONDecoder().decode(JSONValue.self, from: Data(components.utf8)) else {
            fatalError("OpenAPI.components is not a JSON object")
        }
        root["security"] = [["bearer": []]]
        root["paths"] = .object(paths.mapValues { item in
            guard case .object(var methods) = item else { return item }
            for (method, operation) in methods { methods[method] = complete(operation, method: method) }
            return .object(methods)
        })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(JSONValue.object(root))) ?? Data(), as: UTF8.self)
    }()

    /// Every operation answers 401 without the token (unless it is open),
    /// and has an id (generators name client methods by it).
    static func complete(_ operation: JSONValue, method: String) -> JSONValue {
        guard case .object(var fields) = operation else { return operation }
        if case .object(var responses)? = fields["responses"], fields["security"] != [] {
            responses["401"] = responses["401"] ?? error
            // A change the caller's role may not make (AccessPolicy).
            if method != "get" { responses["403"] = responses["403"] ?? error }
            fields["responses"] = .object(responses)
        }
        return .object(fields)
    }

    // MARK: Building blocks

    static func path(_ name: String, _ description: String? = nil) -> JSONValue {
        var parameter: [String: JSONValue] = ["name": .string(name), "in": "path", "required": true, "schema": ["type": "string"]]
        if let description { parameter["description"] = .string(description) }
        return .object(parameter)
    }

    static func query(_ name: String, _ schema: JSONValue, _ description: String? = nil, required: Bool = false) -> JSONValue {
        var parameter: [String: JSONValue] = ["name": .string(name), "in": "query", "schema": schema]
        if required { parameter["required"] = true }
        if let description { parameter["description"] = .string(description) }
        return .object(parameter)
    }

    static func json(_ schema: JSONValue, _ description: String = "ok") -> JSONValue {
        ["description": .string(description), "content": ["application/json": ["schema": schema]]]
    }

    static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/" + name)] }
    static func list(_ key: String, of item: String) -> JSONValue {
        ["type": "object", "required": [.string(key)], "properties": [key: ["type": "array", "items": ref(item)]]]
    }
    static let error: JSONValue = ["$ref": "#/components/responses/Error"]
    static func errors(_ codes: [Int]) -> [String: JSONValue] {
        Dictionary(uniqueKeysWithValues: (codes + [401]).map { (String($0), error) })
    }

    /// One operation: responses are the success ones and the error codes it may answer.
    static func op(_ id: String, _ summary: String, parameters: [JSONValue] = [], body: JSONValue? = nil,
                   _ responses: [String: JSONValue], errors codes: [Int] = [], security: Bool = true) -> JSONValue {
        var operation: [String: JSONValue] = ["operationId": .string(id), "summary": .string(summary)]
        if !parameters.isEmpty { operation["parameters"] = .array(parameters) }
        if let body { operation["requestBody"] = body }
        operation["responses"] = .object(responses.merging(security ? errors(codes) : Dictionary(uniqueKeysWithValues: codes.map { (String($0), error) })) { first, _ in first })
        if !security { operation["security"] = [] }
        return .object(operation)
    }

    static let config: JSONValue = ["required": true, "description": "a job config (YAML, or JSON), at most 1 MiB", "content": [
        "application/yaml": ["schema": ["type": "string"]], "application/json": ["schema": ["type": "object"]],
        "text/plain": ["schema": ["type": "string"]]]]
    static let sse: JSONValue = ["description": "Server-Sent Events: `id: SEQ`, `event: TYPE`, `data: {...}` (an Event)",
                                 "content": ["text/event-stream": ["schema": ["type": "string"]]]]
    static let limit = query("limit", ["type": "integer", "minimum": 1, "maximum": 1000, "default": 100])

    // MARK: Paths

    static var paths: [String: JSONValue] {
        var paths = modelPaths.merging(userPaths) { first, _ in first }
        paths["/health"] = ["get": op("health", "liveness", [ "200": json(["type": "object", "properties": ["status": ["type": "string"]]])], security: false)]
        let check: JSONValue = ["type": "object", "required": ["ok", "detail", "ms"],
                                    "properties": ["ok": ["type": "boolean"], "detail": ["type": "string"], "ms": ["type": "number"]]]
        let readiness: JSONValue = ["type": "object", "required": ["status", "checks"], "properties": [
            "status": ["type": "string", "enum": ["ready", "not ready"]], "failing": ["type": "string"], "message": ["type": "string"],
            "checks": ["type": "object", "additionalProperties": check]]]
        paths["/ready"] = ["get": op("ready", "readiness: the store, the queue, the engine and the artifact folder answer",
                                     ["200": json(readiness, "ready"), "503": json(readiness, "a part does not answer: `failing` names it")], security: false)]
        paths["/metrics"] = ["get": op("metrics", "Prometheus text: predict requests and errors by model, version and code; latency and images-per-request histograms; queue depth, load time, memory and restarts per loaded version; jobs by state",
                                        ["200": ["description": "Prometheus text format 0.0.4", "content": ["text/plain": ["schema": ["type": "string"]]]]])]
        paths["/api/openapi.json"] = ["get": op("openapi", "this document", ["200": json(["type": "object"])])]
        paths["/api/docs"] = ["get": op("docs", "this document as a page (offline: the server's own files); a browser without a session is sent to /sign-in",
                                        ["200": ["description": "the page", "content": ["text/html": ["schema": ["type": "string"]]]]])]
        paths["/api/jobs"] = [
            "get": op("listJobs", "jobs, newest first, a page at a time (?before= the last page's `next`)", parameters: [limit, query("state", ref("JobState")),
                      query("owner", ["type": "string"], "only this user's jobs"), query("mine", ["type": "boolean"], "only the caller's jobs"),
                      query("experiment", ["type": "string"]), query("model", ["type": "string"], "the config's model, as submitted"),
                      query("dataset", ["type": "string"], "a registered dataset's name (any version) or NAME@ID"),
                      query("before", ["type": "string"], "a job id: the jobs after it in this order (the previous page's `next`)")],
                      ["200": json(["type": "object", "required": ["jobs"], "properties": ["jobs": ["type": "array", "items": ref("Job")],
                                                                                        "next": ["type": "string", "description": "present when the page is full: pass it as ?before= for the next"]]])],
                      errors: [400]),
            "post": op("submitJob", "submit a config; the X-Yard-Git-Commit header records the submitter's commit, X-Yard-Git-Dirty `clean` or the sha256 of its uncommitted diff", body: config,
                       ["201": json(ref("Submitted"), "queued")], errors: [400, 404, 409, 413, 415]),
        ]
        let id = path("id", "a job id")
        paths["/api/jobs/{id}"] = ["get": op("getJob", "a job with its epochs and artifacts", parameters: [id], ["200": json(ref("JobDetail"))], errors: [404])]
        paths["/api/jobs/{id}/stop"] = ["post": op("stopJob", "graceful stop (a queued job at once)", parameters: [id], ["200": json(ref("Job"))], errors: [404, 409])]
        paths["/api/jobs/{id}/resume"] = ["post": op("resumeJob", "queue a stopped or failed job again; it resumes from its last checkpoint", parameters: [id],
                                                      ["200": json(ref("Job"))], errors: [404, 409])]
        paths["/api/jobs/{id}/rerun"] = ["post": op("rerunJob", "submit the job again: the same config, seed, pinned dataset version and starting weights (?on_latest_data=true: the dataset's latest version); refused when a piece is gone",
            parameters: [id, query("on_latest_data", ["type": "boolean", "default": false])],
            ["201": json(ref("Job"))], errors: [400, 404, 409])]
        paths["/api/lineage/{ref}"] = ["get": op("getLineage", "what made a model version or a job, in one answer",
            parameters: [path("ref", "a job id, or a registered model as NAME, NAME@ALIAS or NAME@vN")], ["200": json(ref("Lineage"))], errors: [400, 404])]
        paths["/api/lineage/{ref}/bundle"] = ["get": op("getLineageBundle", "the run's record as a tar: bundle.json, lineage.json, config.json (secrets masked), metrics.json, weights.json (sha256s), dataset/manifest.json (DVC listing), environment.txt (the engine's installed distributions)",
            parameters: [path("ref", "a job id, or a registered model as NAME, NAME@ALIAS or NAME@vN")],
            ["200": ["description": "a POSIX tar", "content": ["application/x-tar": ["schema": ["type": "string", "format": "binary"]]]]], errors: [400, 404])]
        paths["/api/jobs/{id}/events"] = ["get": op("jobEvents", "a job's events (SSE), after Last-Event-ID or ?after=; ends after the event of its end", parameters: [id,
            query("after", ["type": "integer", "minimum": 0])], ["200": ["description": "Server-Sent Events: `id: SEQ`, `event: TYPE` (state, epoch, progress, log, artifact), `data: {...}` (the event's data alone: an Event's `data`)",
                                                                 "content": ["text/event-stream": ["schema": ["type": "string"]]]]], errors: [400, 404])]
        paths["/api/jobs/{id}/logs"] = ["get": op("jobLogs", "the training log; ?follow=true streams it", parameters: [id,
            query("follow", ["type": "boolean", "default": false])],
            ["200": ["description": "log lines", "content": ["text/plain": ["schema": ["type": "string"]]]]], errors: [404])]
        paths["/api/jobs/{id}/weights"] = ["get": op("jobWeights", "the job's weights file as its training stored it (best.pt, or last.pt with ?which=last)", parameters: [id,
            query("which", ["type": "string", "enum": ["best", "last"], "default": "best"])],
            ["200": ["description": "the .pt file", "content": ["application/octet-stream": ["schema": ["type": "string", "format": "binary"]]]]], errors: [400, 404])]
        paths["/api/jobs/{id}/artifact"] = ["get": op("jobArtifact", "one file the job's training kept (?name= as GET /api/jobs/{id} lists it without the id: results.png, weights/best.pt); images, CSV and text inline, the rest as a download", parameters: [id,
            query("name", ["type": "string"], required: true)],
            ["200": ["description": "the file", "content": ["application/octet-stream": ["schema": ["type": "string", "format": "binary"]],
                                                             "image/png": ["schema": ["type": "string", "format": "binary"]],
                                                             "text/csv": ["schema": ["type": "string"]]]]], errors: [400, 404])]
        paths["/api/events"] = ["get": op("events", "the event log (SSE): every event after Last-Event-ID or ?after=; a reader below the retained window first gets one `truncated` event",
            parameters: [query("after", ["type": "integer", "minimum": 0]),
                         query("entity", ["type": "string", "enum": .array(EventEntity.allCases.map { .string($0.rawValue) })]),
                         query("id", ["type": "string"], "the entity's id"), query("type", ["type": "string"], "comma-separated event types"),
                         query("state", ["type": "string"], "only state events into this state"),
                         query("experiment", ["type": "string"], "only events of the jobs and sweeps of this experiment"),
                         query("follow", ["type": "boolean", "default": true], "false: what is stored, then the stream ends")],
            ["200": sse], errors: [400])]
        paths["/api/sweeps"] = [
            "get": op("listSweeps", "sweeps, newest first", parameters: [limit], ["200": json(list("sweeps", of: "SweepSummary"))], errors: [400]),
            "post": op("createSweep", "start a sweep (a config with a sweeper: block)", body: config, ["201": json(ref("Sweep"))], errors: [400, 409, 413, 415]),
        ]
        paths["/api/sweeps/{id}"] = ["get": op("getSweep", "a sweep and its trials", parameters: [path("id", "a sweep id")], ["200": json(ref("Sweep"))], errors: [404])]
        paths["/api/sweeps/{id}/stop"] = ["post": op("stopSweep", "stop a sweep: its running trials are stopped", parameters: [path("id", "a sweep id")],
                                                      ["200": json(ref("Sweep"))], errors: [404, 409])]
        paths["/api/datasets"] = [
            "get": op("listDatasets", "each dataset's latest version, with how many it has", ["200": json(list("datasets", of: "DatasetVersion"))]),
            "post": op("addDataset", "add a version from a folder under --dataset-root, a URL, or an uploaded ZIP; answers JSON lines of progress",
                       body: ["required": true, "content": ["application/json": ["schema": ["type": "object", "required": ["name"], "properties": [
                           "name": ["type": "string"], "source": ["type": "string"], "format": ["type": "string"], "seed": ["type": "integer"]]]],
                           "application/zip": ["schema": ["type": "string", "format": "binary"]]]],
                       ["200": ["description": "progress, then the version or the error, one JSON object per line",
                                "content": ["application/x-ndjson": ["schema": ["type": "string"]]]]], errors: [400, 403, 409, 413, 415]),
        ]
        paths["/api/datasets/{name}"] = ["get": op("getDataset", "a dataset's versions, newest first, with the jobs that trained on each",
            parameters: [path("name")], ["200": json(["type": "object", "properties": ["name": ["type": "string"], "versions": ["type": "array", "items": ref("DatasetVersion")]]])],
            errors: [400, 404])]
        paths["/api/datasets/{name}/versions/{version}/report"] = ["get": op("datasetReport", "a version's validation report (problems by file)",
            parameters: [path("name"), path("version", "a number or an id prefix")], ["200": json(["type": "object"])], errors: [400, 404])]
        paths["/api/events/head"] = ["get": op("eventsHead", "the newest event's sequence number: read it, then the state, then follow /api/events?after=SEQ",
                                               ["200": json(["type": "object", "required": ["seq"], "properties": ["seq": ["type": "integer"]]])])]
        let session: JSONValue = ["type": "object", "properties": ["auth_required": ["type": "boolean"], "signed_in": ["type": "boolean"], "csrf": ["type": "string"]]]
        paths["/api/session"] = [
            "get": op("getSession", "the dashboard's session: whether a token is required, whether this browser is signed in, its CSRF token",
                      ["200": json(session)], security: false),
            "post": op("signIn", "sign in with the token: sets the HttpOnly, SameSite=Strict session cookie",
                       body: ["required": true, "content": ["application/json": ["schema": ["type": "object", "required": ["token"], "properties": ["token": ["type": "string"]]]]]],
                       ["200": json(session)], errors: [400, 401, 403, 429], security: false),
            "delete": op("signOut", "sign out (with the session's X-CSRF-Token)", ["200": json(session)], errors: [403], security: false),
        ]
        paths["/api/webhooks"] = ["get": op("listWebhooks", "webhook targets (URL masked to scheme and host), their filter, last delivery and error, pending count, and the log cursor",
                                            ["200": json(["type": "object", "required": ["targets", "cursor", "pending"], "properties": [
                                                "targets": ["type": "array", "items": ["type": "object", "required": ["key", "kind", "url", "format", "pending"], "properties": [
                                                    "key": ["type": "string", "description": "server-HASH, job:ID or sweep:ID"], "kind": ["type": "string"],
                                                    "url": ["type": "string", "description": "scheme and host only"], "events": ["type": "array", "items": ["type": "string"]],
                                                    "format": ["type": "string"], "last_sequence": ["type": "integer"], "last_time": ["type": "string"],
                                                    "last_status": ["type": "integer"], "last_error": ["type": "string"], "last_error_time": ["type": "string"],
                                                    "pending": ["type": "integer"], "delivered": ["type": "integer"], "given_up": ["type": "integer"]]]],
                                                "cursor": ["type": "integer", "description": "the last event of the log handled"],
                                                "note": ["type": "string", "description": "set when retention removed events past the cursor"],
                                                "pending": ["type": "integer", "description": "deliveries waiting, all targets"]]])])]
        paths["/api/workers"] = ["get": op("listWorkers", "workers: host, device, GPUs, current job, last heartbeat; lost ones marked",
                                           ["200": json(list("workers", of: "Worker"))])]
        return paths
    }

    /// Users, tokens and the audit trail (UsersController).
    static var userPaths: [String: JSONValue] {
        let user: JSONValue = ["type": "object", "required": ["name", "role"], "properties": [
            "name": ["type": "string"], "role": ["type": "string", "enum": ["viewer", "member", "admin"]],
            "created_at": ["type": "string"], "created_by": ["type": "string"]]]
        let token: JSONValue = ["type": "object", "required": ["id", "user"], "properties": [
            "id": ["type": "string", "description": "the token's public id (12 hex digits)"], "user": ["type": "string"], "label": ["type": "string"],
            "created_at": ["type": "string"], "created_by": ["type": "string"], "expires_at": ["type": "string"], "revoked_at": ["type": "string"],
            "token": ["type": "string", "description": "the token itself: in the answer of its creation only"]]]
        let body = { (required: [String], properties: [String: JSONValue]) -> JSONValue in
            ["required": true, "content": ["application/json": ["schema": ["type": "object", "required": .array(required.map { .string($0) }),
                                                                             "properties": .object(properties)]]]]
        }
        let name = path("name", "a user's name")
        return [
            "/api/users": [
                "get": op("listUsers", "users and their roles (admin)", ["200": json(["type": "object", "properties": ["users": ["type": "array", "items": user]]])], errors: [403]),
                "post": op("addUser", "add a user with a role (admin)", body: body(["name", "role"], ["name": ["type": "string"], "role": ["type": "string"]]),
                           ["201": json(user)], errors: [400, 409]),
            ],
            "/api/users/{name}": [
                "patch": op("changeUser", "change a user's role (admin)", parameters: [name], body: body(["role"], ["role": ["type": "string"]]),
                            ["200": json(user)], errors: [400, 404]),
                "delete": op("removeUser", "remove a user; their tokens stop working (admin)", parameters: [name], ["204": ["description": "removed"]], errors: [404]),
            ],
            "/api/tokens": [
                "get": op("listTokens", "tokens (never the tokens themselves), ?user= one user's (admin)", parameters: [query("user", ["type": "string"])],
                          ["200": json(["type": "object", "properties": ["tokens": ["type": "array", "items": token]]])], errors: [403]),
                "post": op("createToken", "a new token for a user, shown in this answer only (admin); expires: 12h, 30d, 2w",
                           body: body(["user"], ["user": ["type": "string"], "name": ["type": "string"], "expires": ["type": "string"]]),
                           ["201": json(token)], errors: [400, 404]),
            ],
            "/api/tokens/{id}": ["delete": op("revokeToken", "revoke a token: refused from the next request on (admin)", parameters: [path("id", "a token id")],
                                              ["200": json(token)], errors: [404])],
            "/api/audit": ["get": op("audit", "the last requests that asked for a change: who, what, from where, the status (oldest first)",
                                     parameters: [query("user", ["type": "string"]), query("limit", ["type": "integer", "minimum": 1, "maximum": 10000, "default": 100])],
                                     ["200": json(["type": "object", "properties": ["events": ["type": "array", "items": ["type": "object"]]]])], errors: [400])],
        ]
    }

    static var modelPaths: [String: JSONValue] {
        guard case .object(let paths)? = try? JSONDecoder().decode(JSONValue.self, from: Data(modelPathsJSON.utf8)) else { return [:] }
        return paths
    }

    static let components = #"""
{
  "openapi": "3.1.0",
  "info": {"title": "Trainyard", "version": "1", "description": "Self-hosted YOLO training, registry and serving. With YARD_TOKEN set every /api route needs `Authorization: Bearer TOKEN`."},
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "schemas": {
      "JobState": {"type": "string", "enum": ["queued", "running", "stopping", "succeeded", "failed", "stopped", "pruned"]},
      "Job": {"type": "object", "required": ["id", "state", "model", "created_at"], "description": "a job; its config with secrets masked", "properties": {
        "id": {"type": "string"}, "experiment": {"type": "string"}, "model": {"type": "string"}, "type": {"type": "string"},
        "state": {"$ref": "#/components/schemas/JobState"}, "config": {"type": "object"}, "message": {"type": "string"},
        "attempts": {"type": "integer"}, "crashes": {"type": "integer"}, "worker": {"type": "string"}, "device": {"type": "string"},
        "epoch": {"type": "integer"}, "epochs": {"type": "integer"}, "fitness": {"type": "number"},
        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"}, "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": "string", "format": "date-time"}, "save_dir": {"type": "string"},
        "best_weights": {"type": "string"}, "last_weights": {"type": "string"},
        "final_metrics": {"type": "object", "additionalProperties": {"type": "number"}},
        "test_metrics": {"type": "object"}, "run_id": {"type": "string"}, "mlflow_run_id": {"type": "string"},
        "tracking": {"type": "string"}, "tracking_error": {"type": "string"}, "git_commit": {"type": "string"},
        "dataset": {"type": "string", "description": "NAME@ID of the dataset version it trained on"}, "dataset_hash": {"type": "string"},
        "claim": {"type": "integer"}, "report_seq": {"type": "integer"}, "pruning": {"type": "string"},
        "owner": {"type": "string", "description": "the user who submitted it"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9, "description": "its config's priority (9 first; absent: 5)"},
        "waiting": {"type": "string", "description": "GET /api/jobs/{id} of a queued job the queue holds back: why (its user's --max-running reached, or no live worker has its resources.tags or resources.gpu_memory_gb free)"},
        "provenance": {"type": "object", "description": "git_dirty, git_diff (sha256 of the uncommitted diff), parent (the registered version it fine-tuned from), rerun_of, host"}}},
      "Lineage": {"type": "object", "required": ["job", "config", "dataset", "code", "engine", "registered", "alias_history"],
        "description": "what made a model version or a job: its job and attempts, config (secrets masked), seed, dataset version, code, engine versions, device and host, sweep trial, parent model, metrics and every alias move", "properties": {
        "model": {"type": "object"}, "registered": {"type": "array", "items": {"type": "object"}},
        "job": {"type": "object", "required": ["id", "state", "attempts"], "properties": {"id": {"type": "string"}, "state": {"$ref": "#/components/schemas/JobState"},
          "attempts": {"type": "integer"}, "crashes": {"type": "integer"}, "experiment": {"type": "string"}, "model": {"type": "string"},
          "created_at": {"type": "string", "format": "date-time"}, "started_at": {"type": "string", "format": "date-time"},
          "finished_at": {"type": "string", "format": "date-time"}, "message": {"type": "string", "description": "why it failed or stopped"}}},
        "attempts": {"type": "array", "items": {"type": "object", "required": ["number", "started"], "properties": {"number": {"type": "integer"},
          "started": {"type": "string", "format": "date-time"}, "ended": {"type": "string", "format": "date-time"},
          "end": {"$ref": "#/components/schemas/JobState"}, "message": {"type": "string"}}}},
        "config": {"type": "object"}, "seed": {"type": "integer"}, "deterministic": {"type": "boolean"},
        "dataset": {"type": "object", "properties": {"hash": {"type": "string", "description": "the DVC directory hash"}, "data": {"type": "string"},
          "version": {"$ref": "#/components/schemas/DatasetVersion"}, "present": {"type": "boolean"}}},
        "code": {"type": "object", "properties": {"commit": {"type": "string"}, "dirty": {"type": "boolean"}, "diff": {"type": "string"}}},
        "engine": {"type": "object", "additionalProperties": {"type": "string"}}, "device": {"type": "string"}, "host": {"type": "string"},
        "worker": {"type": "string"}, "sweep": {"type": "object"}, "parent": {"type": "object"}, "rerun_of": {"type": "string"},
        "metrics": {"type": "object", "additionalProperties": {"type": "number"}}, "fitness": {"type": "number"},
        "last_epoch": {"type": "object", "additionalProperties": {"type": "number"}, "description": "the last epoch's losses, learning rates and metrics"},
        "test": {"type": "object", "additionalProperties": {"type": "number"}}, "alias_history": {"type": "array", "items": {"type": "object"}}}},
      "Epoch": {"type": "object", "required": ["job_id", "epoch", "metrics"], "properties": {
        "job_id": {"type": "string"}, "epoch": {"type": "integer"}, "seconds": {"type": "number"},
        "metrics": {"type": "object", "additionalProperties": {"type": "number"}}}},
      "Artifact": {"type": "object", "required": ["job_id", "key", "kind"], "properties": {
        "job_id": {"type": "string"}, "key": {"type": "string"}, "kind": {"type": "string"}, "size": {"type": "integer"}}},
      "JobDetail": {"allOf": [{"$ref": "#/components/schemas/Job"}, {"type": "object", "properties": {
        "epoch_metrics": {"type": "array", "items": {"$ref": "#/components/schemas/Epoch"}},
        "artifacts": {"type": "array", "items": {"$ref": "#/components/schemas/Artifact"}}}}]},
      "Submitted": {"type": "object", "required": ["id", "state"], "properties": {"id": {"type": "string"}, "state": {"$ref": "#/components/schemas/JobState"}}},
      "Event": {"type": "object", "description": "one event of the log; as SSE: `id: SEQ`, `event: TYPE`, `data: JSON of this object`",
        "required": ["seq", "entity", "id", "type", "time", "data"], "properties": {
        "seq": {"type": "integer", "description": "the global sequence number (gap-free, increasing in commit order)"},
        "entity": {"type": "string", "enum": ["job", "sweep", "model", "dataset", "worker", "user", "audit"]}, "id": {"type": "string"},
        "type": {"type": "string", "description": "state, epoch, progress, log, artifact, trial, version, alias, truncated, ..."},
        "time": {"type": "string"}, "data": {"type": "object"},
        "experiment": {"type": "string", "description": "the experiment of the job or sweep it is about"}}},
      "Trial": {"type": "object", "required": ["number", "job_id", "params"], "properties": {
        "number": {"type": "integer"}, "job_id": {"type": "string"}, "params": {"type": "object"}, "reported": {"type": "integer"},
        "told": {"$ref": "#/components/schemas/JobState"}, "value": {"type": "number"}, "message": {"type": "string"},
        "state": {"type": "string"}, "epoch": {"type": "integer"}}},
      "Best": {"type": "object", "properties": {"number": {"type": "integer"}, "job_id": {"type": "string"}, "value": {"type": "number"}, "params": {"type": "object"}}},
      "SweepSummary": {"type": "object", "required": ["id", "study", "state", "trials"], "properties": {
        "id": {"type": "string"}, "study": {"type": "string"}, "experiment": {"type": "string"},
        "state": {"type": "string", "enum": ["running", "stopping", "finished", "stopped", "failed"]},
        "trials": {"type": "integer"}, "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "created_at": {"type": "number"}, "n_trials": {"type": "integer"}, "fitness": {"type": "string"}, "message": {"type": "string"},
        "mlflow_run_id": {"type": "string"}, "best": {"$ref": "#/components/schemas/Best"}}},
      "Sweep": {"allOf": [{"$ref": "#/components/schemas/SweepSummary"}, {"type": "object", "properties": {
        "trial_list": {"type": "array", "items": {"$ref": "#/components/schemas/Trial"}}, "config": {"type": "object"},
        "best_config": {"type": "object"}, "retrain_job_id": {"type": "string"}}}]},
      "DatasetVersion": {"type": "object", "required": ["name", "number", "id"], "properties": {
        "name": {"type": "string"}, "number": {"type": "integer"}, "id": {"type": "string", "description": "the DVC directory hash"},
        "source": {"type": "string"}, "format": {"type": "string"}, "task": {"type": "string"}, "files": {"type": "integer"},
        "bytes": {"type": "integer"}, "classes": {"type": "array", "items": {"type": "string"}},
        "splits": {"type": "object", "additionalProperties": {"type": "object", "properties": {"images": {"type": "integer"},
          "labelled": {"type": "integer"}, "instances": {"type": "integer"}, "class_counts": {"type": "array", "items": {"type": "integer"}}}}},
        "errors": {"type": "integer"}, "warnings": {"type": "integer"}, "notes": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"}, "versions": {"type": "integer"}, "path": {"type": "string"},
        "jobs": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "state": {"type": "string"}, "fitness": {"type": ["number", "null"]}}}}}},
      "Worker": {"type": "object", "required": ["id", "host", "status"], "properties": {
        "id": {"type": "string"}, "host": {"type": "string"}, "pid": {"type": "integer"}, "device": {"type": "string"},
        "versions": {"type": "object", "additionalProperties": {"type": "string"}}, "job": {"type": "string"},
        "status": {"type": "string", "enum": ["idle", "busy", "lost"]}, "started_at": {"type": "string", "format": "date-time"},
        "heartbeat_at": {"type": "string", "format": "date-time"}, "expires_at": {"type": "string", "format": "date-time"},
        "lease_seconds": {"type": "number"}, "gpu_error": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "description": "yard worker --tags: a job's resources.tags must all be among them"},
        "backlog": {"type": "object", "properties": {"reports": {"type": "integer"}, "spool_operations": {"type": "integer"}, "spool_oldest_seconds": {"type": "number"}}},
        "gpus": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "uuid": {"type": "string"},
          "name": {"type": "string"}, "memory_total_mib": {"type": "integer"}, "memory_used_mib": {"type": "integer"},
          "utilization_percent": {"type": "integer"}, "temperature_c": {"type": "integer"}}}}}},
      "Error": {"type": "object", "required": ["error", "message"], "properties": {
        "error": {"type": "string", "description": "invalid_input, not_found, conflict, unauthorized, too_large, unsupported_media_type, unavailable"},
        "message": {"type": "string", "description": "one line that says what to do"},
        "field": {"type": "string"}}},
      "Box": {"type": "object", "required": ["class", "name", "score", "xyxy", "xyxyn"], "properties": {
        "class": {"type": "integer"}, "name": {"type": "string"}, "score": {"type": "number", "minimum": 0, "maximum": 1},
        "xyxy": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "description": "pixels of the image as sent"},
        "xyxyn": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "description": "normalised to 0-1"}}},
      "TopClass": {"type": "object", "required": ["class", "name", "score"], "properties": {
        "class": {"type": "integer"}, "name": {"type": "string"}, "score": {"type": "number"}}},
      "ImageResult": {"type": "object", "required": ["width", "height"], "properties": {
        "width": {"type": "integer"}, "height": {"type": "integer"}, "faces_blurred": {"type": "integer", "description": "with face blurring on"},
        "boxes": {"type": "array", "items": {"$ref": "#/components/schemas/Box"}, "description": "detection models"},
        "top": {"type": "array", "items": {"$ref": "#/components/schemas/TopClass"}, "description": "classification models: the top_k classes"}}},
      "Prediction": {"type": "object", "required": ["model", "version", "task", "images", "timing_ms"], "properties": {
        "model": {"type": "string"}, "version": {"type": "string", "description": "the version that answered"},
        "sha256": {"type": "string"}, "aliases": {"type": "array", "items": {"type": "string"}},
        "runtime": {"type": "string", "enum": ["torch", "onnx"]},
        "task": {"type": "string", "enum": ["detect", "segment", "classify", "pose", "obb"]},
        "images": {"type": "array", "items": {"$ref": "#/components/schemas/ImageResult"}, "description": "one per image, in order"},
        "timing_ms": {"type": "object", "properties": {"decode": {"type": "number"}, "inference": {"type": "number"}, "total": {"type": "number"}}}}},
      "HealthCheck": {"type": "object", "properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"},
        "latency_ms": {"type": "number"}, "load_ms": {"type": "number"}, "time": {"type": "string", "format": "date-time"}}},
      "ModelVersion": {"type": "object", "required": ["name", "version", "job_id"], "properties": {
        "name": {"type": "string"}, "version": {"type": "string"}, "job_id": {"type": "string"}, "run_id": {"type": "string"},
        "source": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"}, "created_by": {"type": "string", "description": "the user who registered it"},
        "aliases": {"type": "array", "items": {"type": "string"}}, "sha256": {"type": "string"}, "size": {"type": "integer"},
        "task": {"type": "string"}, "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
        "mlflow_version": {"type": "string"}, "health": {"$ref": "#/components/schemas/HealthCheck"},
        "exports": {"type": "object", "description": "by format (onnx)", "additionalProperties": {"type": "object", "properties": {
          "format": {"type": "string"}, "sha256": {"type": "string"}, "size": {"type": "integer"}, "imgsz": {"type": "integer"},
          "export_ms": {"type": "number"}, "created_at": {"type": "string", "format": "date-time"}}}},
        "locations": {"type": "array", "items": {"type": "object", "properties": {
          "kind": {"type": "string", "enum": ["artifact", "s3", "mlflow"]}, "key": {"type": "string"}, "bucket": {"type": "string"},
          "endpoint": {"type": "string"}, "run_id": {"type": "string"}}}}}},
      "ModelSettings": {"type": "object", "properties": {"blur_faces": {"type": ["object", "null"],
        "description": "null: off. OpenCV's frontal-face Haar cascade; each key optional",
        "properties": {"scale_factor": {"type": "number", "exclusiveMinimum": 1, "maximum": 2, "default": 1.1},
          "min_neighbors": {"type": "integer", "minimum": 0, "maximum": 50, "default": 5},
          "min_size": {"type": "integer", "minimum": 8, "maximum": 4096, "default": 24},
          "detect_side": {"type": "integer", "minimum": 160, "maximum": 8000, "default": 1280}}}}},
      "Model": {"type": "object", "required": ["name", "latest", "aliases", "versions"], "properties": {
        "name": {"type": "string"}, "latest": {"type": "string", "description": "the newest version's number"},
        "aliases": {"type": "object", "description": "alias → version", "additionalProperties": {"type": "string"}},
        "versions": {"type": "array", "description": "newest first", "items": {"$ref": "#/components/schemas/ModelVersion"}}}},
      "Serving": {"type": "object", "required": ["processes_per_version", "threads_per_process", "memory_limit_bytes", "loaded"], "properties": {
        "processes_per_version": {"type": "integer"}, "threads_per_process": {"type": "integer"}, "memory_limit_bytes": {"type": "integer"},
        "loaded": {"type": "array", "items": {"type": "object", "properties": {
          "sha256": {"type": "string", "description": "the file it runs (weights or export)"}, "task": {"type": "string"}, "runtime": {"type": "string", "enum": ["torch", "onnx"]},
          "processes": {"type": "integer"}, "threads": {"type": "integer"}, "memory_bytes": {"type": "integer"}, "load_ms": {"type": "number"},
          "restarts": {"type": "integer"}, "recycled": {"type": "integer"}, "starting": {"type": "integer"}, "in_flight": {"type": "integer"},
          "batch_sizes": {"type": "object", "description": "batch size → how many batches", "additionalProperties": {"type": "integer"}},
          "pids": {"type": "array", "items": {"type": "integer"}}}}}}},
      "AliasChange": {"type": "object", "properties": {"name": {"type": "string"}, "alias": {"type": "string"},
        "version": {"type": ["string", "null"]}, "previous": {"type": ["string", "null"]},
        "time": {"type": "string", "format": "date-time"}, "reason": {"type": "string"},
        "by": {"type": "string", "description": "the user who moved it (absent on a server without users)"}}}
    },
    "responses": {"Error": {"description": "a 4xx/5xx with its reason", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
}
}
"""#

    /// The registry and serving operations, written as JSON.
    static let modelPathsJSON = #"""
{
    "/api/predict/{name}": {"post": {"operationId": "predict", 
      "summary": "Run a registered version on one or more images",
      "parameters": [
        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "version", "in": "query", "schema": {"type": "string"}, "description": "a version number"},
        {"name": "alias", "in": "query", "schema": {"type": "string"}, "description": "default: production, else the latest version"},
        {"name": "conf", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.25}},
        {"name": "iou", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.7}},
        {"name": "imgsz", "in": "query", "schema": {"type": "integer", "minimum": 32, "maximum": 4096}},
        {"name": "max_det", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 3000, "default": 300}},
        {"name": "classes", "in": "query", "schema": {"type": "string"}, "description": "comma-separated class ids"},
        {"name": "top_k", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 5}},
        {"name": "runtime", "in": "query", "schema": {"type": "string", "enum": ["torch", "onnx"], "default": "torch"},
         "description": "onnx: the version's ONNX export (made by POST .../versions/N/export), run by onnxruntime"}],
      "requestBody": {"required": true, "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}},
      "responses": {
        "200": {"description": "one result per image; headers X-Model-Version: NAME/N, X-Model-Runtime", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}}},
        "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"},
        "409": {"$ref": "#/components/responses/Error"},
        "415": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}}},
    "/api/serving": {"get": {"operationId": "serving", "summary": "loaded versions: processes, threads, memory, load time, restarts",
      "responses": {"200": {"description": "the serving settings and each loaded model file", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Serving"}}}}}}},
    "/api/models": {
      "get": {"operationId": "listModels", "summary": "models with their versions and aliases", "parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "properties": {
          "models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}, "versions": {"type": "array", "items": {"$ref": "#/components/schemas/ModelVersion"}}}}}}}}},
      "post": {"operationId": "registerModel", "summary": "register a succeeded job's best weights",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["job_id", "name"],
          "properties": {"job_id": {"type": "string"}, "name": {"type": "string"}, "alias": {"type": "string"}}}}}},
        "responses": {"201": {"description": "a new version", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelVersion"}}}},
          "200": {"description": "the version this job made already", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelVersion"}}}}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}": {"get": {"operationId": "getModel", "summary": "a model and its alias history", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {"200": {"description": "the model and its alias moves, newest first (at most 200)", "content": {"application/json": {"schema": {"type": "object", "required": ["model", "history"],
        "properties": {"model": {"$ref": "#/components/schemas/Model"}, "history": {"type": "array", "items": {"$ref": "#/components/schemas/AliasChange"}}}}}}},
        "404": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/aliases": {"post": {"operationId": "setAlias", "summary": "point an alias at a version (a served alias moves only after the version's health check)",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["alias", "version"],
        "properties": {"alias": {"type": "string"}, "version": {"type": "string"}}}}}},
      "responses": {"200": {"description": "the move", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AliasChange"}}}},
        "409": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/aliases/{alias}": {
      "get": {"operationId": "getAlias", "summary": "the version an alias points at", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "where it points", "content": {"application/json": {"schema": {"type": "object", "required": ["name", "alias", "version"],
          "properties": {"name": {"type": "string"}, "alias": {"type": "string"}, "version": {"type": "string"}}}}}}, "404": {"$ref": "#/components/responses/Error"}}},
      "delete": {"operationId": "removeAlias", "summary": "remove an alias", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the move (version null)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AliasChange"}}}},
          "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/aliases/{alias}/rollback": {"post": {"operationId": "rollbackAlias", "summary": "back to the version the alias pointed at before",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {"200": {"description": "the move", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AliasChange"}}}},
        "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/versions/{version}/weights": {"get": {"operationId": "getWeights", "summary": "the weights file, or with ?format=onnx its export (X-Content-SHA256)",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "version", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["pt", "onnx"], "default": "pt"}}],
      "responses": {"200": {"description": "the file", "content": {"application/octet-stream": {}}}, "404": {"$ref": "#/components/responses/Error"},
        "409": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/versions/{version}/export": {"post": {"operationId": "exportVersion", "summary": "export the weights (ONNX, dynamic axes), kept by content hash beside them; made once",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "version", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["onnx"], "default": "onnx"}}],
      "responses": {"200": {"description": "the version, with exports.onnx", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelVersion"}}}},
        "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}}},
    "/api/models/{name}/settings": {
      "get": {"operationId": "getModelSettings", "summary": "the model's serving preprocessing", "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelSettings"}}}},
          "404": {"$ref": "#/components/responses/Error"}}},
      "put": {"operationId": "setModelSettings", "summary": "replace the model's serving preprocessing (face blurring); the next request uses it",
        "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelSettings"}}}},
        "responses": {"200": {"description": "the settings stored", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ModelSettings"}}}},
          "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}}
}
"""#
}
