import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import YardDomain

/// A small client for MLflow's REST API (tracking, artifacts through the
/// server's proxy, model registry).
public struct MLflowClient: Sendable {
    public let trackingURI: String
    /// Connects within 3 s: an unreachable server fails the call fast and the
    /// spool retries it with backoff (the shared client keeps retrying a
    /// refused connection until the whole request deadline).
    public static let defaultHTTP = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
        timeout: .init(connect: .seconds(3), read: .seconds(60))))
    let http: HTTPClient
    let authorization: String?
    let timeout: TimeAmount

    /// `MLFLOW_TRACKING_TOKEN` becomes a Bearer token; a URI's `user:pass@`
    /// (or `MLFLOW_TRACKING_USERNAME`/`_PASSWORD`) becomes Basic auth.
    public init(trackingURI: String, token: String? = nil, username: String? = nil, password: String? = nil,
                http: HTTPClient = MLflowClient.defaultHTTP, timeout: TimeAmount = .seconds(30)) {
        var uri = trackingURI.hasSuffix("/") ? String(trackingURI.dropLast()) : trackingURI
        var user = username, pass = password
        if let components = URLComponents(string: uri), let u = components.user {
            user = u.removingPercentEncoding ?? u
            pass = components.password?.removingPercentEncoding
            var stripped = components
            stripped.user = nil
            stripped.password = nil
            uri = stripped.string ?? uri
        }
        self.trackingURI = uri
        self.http = http
        self.timeout = timeout
        if let token, !token.isEmpty {
            authorization = "Bearer \(token)"
        } else if let user {
            authorization = "Basic " + Data("\(user):\(pass ?? "")".utf8).base64EncodedString()
        } else {
            authorization = nil
        }
    }

    public struct APIError: Error, CustomStringConvertible, Sendable {
        public let status: Int
        public let code: String
        public let message: String
        public var description: String { "MLflow \(status) \(code): \(message)" }
    }

    // MARK: experiments and runs

    /// The experiment's id, created when missing.
    public func experimentID(named name: String) async throws -> String {
        if let id = try await findExperiment(name) { return id }
        do {
            let created = try await call(.POST, "/api/2.0/mlflow/experiments/create", ["name": .string(name)])
            if let id = created["experiment_id"]?.stringValue { return id }
        } catch let error as APIError where error.code == "RESOURCE_ALREADY_EXISTS" {}
        guard let id = try await findExperiment(name) else {
            throw APIError(status: 0, code: "NOT_FOUND", message: "experiment \(name) could not be created")
        }
        return id
    }

    func findExperiment(_ name: String) async throws -> String? {
        do {
            let found = try await call(.GET, "/api/2.0/mlflow/experiments/get-by-name", query: ["experiment_name": name])
            return found["experiment"]?["experiment_id"]?.stringValue
        } catch let error as APIError where error.code == "RESOURCE_DOES_NOT_EXIST" {
            return nil
        }
    }

    public struct RunInfo: Sendable, Equatable {
        public var runID: String
        public var artifactURI: String
        public var status: String
        /// The run's tags, when the answer held them (search and get do).
        public var tags: [String: String] = [:]
    }

    /// The run tagged with this key/value in the experiment, if one exists:
    /// how a replay finds the run it already created.
    public func findRun(experimentID: String, tag: String, value: String) async throws -> RunInfo? {
        let result = try await call(.POST, "/api/2.0/mlflow/runs/search", [
            "experiment_ids": [.string(experimentID)],
            "filter": .string("tags.`\(tag)` = '\(value.replacingOccurrences(of: "'", with: ""))'"),
            "max_results": 1,
        ])
        return result["runs"]?.arrayValue?.first.flatMap(Self.runInfo)
    }

    public func createRun(experimentID: String, name: String, startTime: Int64, tags: [String: String]) async throws -> RunInfo {
        let result = try await call(.POST, "/api/2.0/mlflow/runs/create", [
            "experiment_id": .string(experimentID),
            "run_name": .string(name),
            "start_time": .int(Int(startTime)),
            "tags": .array(tags.sorted { $0.key < $1.key }.map { ["key": .string($0.key), "value": .string($0.value)] }),
        ])
        guard let info = result["run"].flatMap(Self.runInfo) else {
            throw APIError(status: 0, code: "BAD_RESPONSE", message: "runs/create returned no run")
        }
        return info
    }

    public func getRun(_ runID: String) async throws -> RunInfo {
        let result = try await call(.GET, "/api/2.0/mlflow/runs/get", query: ["run_id": runID])
        guard let info = result["run"].flatMap(Self.runInfo) else {
            throw APIError(status: 0, code: "BAD_RESPONSE", message: "runs/get returned no run")
        }
        return info
    }

    static func runInfo(_ run: JSONValue) -> RunInfo? {
        guard let info = run["info"], let id = info["run_id"]?.stringValue ?? info["run_uuid"]?.stringValue else { return nil }
        var tags: [String: String] = [:]
        for tag in run["data"]?["tags"]?.arrayValue ?? [] {
            if let key = tag["key"]?.stringValue, let value = tag["value"]?.stringValue { tags[key] = value }
        }
        return RunInfo(runID: id, artifactURI: info["artifact_uri"]?.stringValue ?? "", status: info["status"]?.stringValue ?? "", tags: tags)
    }

    public struct Metric: Sendable, Hashable {
        public var key: String
        public var value: Double
        public var timestamp: Int64
        public var step: Int

        public init(key: String, value: Double, timestamp: Int64, step: Int) {
            self.key = key
            self.value = value
            self.timestamp = timestamp
            self.step = step
        }
    }

    /// One log-batch call per chunk (MLflow's limits: 1000 metrics, 100
    /// params, 100 tags, 1000 entries in all).
    public func logBatch(runID: String, metrics: [Metric] = [], params: [String: String] = [:], tags: [String: String] = [:]) async throws {
        var metrics = metrics[...]
        var params = params.sorted { $0.key < $1.key }[...]
        var tags = tags.sorted { $0.key < $1.key }[...]
        while !metrics.isEmpty || !params.isEmpty || !tags.isEmpty {
            let p = params.prefix(100), t = tags.prefix(100)
            let m = metrics.prefix(1000 - p.count - t.count)
            params = params.dropFirst(p.count)
            tags = tags.dropFirst(t.count)
            metrics = metrics.dropFirst(m.count)
            _ = try await call(.POST, "/api/2.0/mlflow/runs/log-batch", [
                "run_id": .string(runID),
                "metrics": .array(m.map { ["key": .string($0.key), "value": .double($0.value), "timestamp": .int(Int($0.timestamp)), "step": .int($0.step)] }),
                "params": .array(p.map { ["key": .string($0.key), "value": .string(String($0.value.prefix(6000)))] }),
                "tags": .array(t.map { ["key": .string($0.key), "value": .string($0.value)] }),
            ])
        }
    }

    /// Marks a run deleted (MLflow keeps it until its garbage collection; searches no longer find it).
    public func deleteRun(_ runID: String) async throws {
        _ = try await call(.POST, "/api/2.0/mlflow/runs/delete", ["run_id": .string(runID)])
    }

    public func updateRun(runID: String, status: String, endTime: Int64) async throws {
        _ = try await call(.POST, "/api/2.0/mlflow/runs/update", ["run_id": .string(runID), "status": .string(status), "end_time": .int(Int(endTime))])
    }

    /// Uploads a file into the run's artifacts through the server's artifact
    /// proxy (`mlflow server --serve-artifacts`).
    public func uploadArtifact(run: RunInfo, localPath: String, artifactPath: String) async throws {
        let prefix = "mlflow-artifacts:/"
        guard run.artifactURI.hasPrefix(prefix) else {
            throw APIError(status: 0, code: "UNSUPPORTED", message: "the run's artifact store (\(run.artifactURI)) is not served by the tracking server; start it with --serve-artifacts")
        }
        let base = String(run.artifactURI.dropFirst(prefix.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let path = (base + "/" + artifactPath).split(separator: "/").map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? String($0) }.joined(separator: "/")
        var request = HTTPClientRequest(url: trackingURI + "/api/2.0/mlflow-artifacts/artifacts/" + path)
        request.method = .PUT
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.body = .bytes(try FileBytes.read(localPath))
        let response = try await http.execute(request, timeout: .seconds(600))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code < 300 else { throw Self.error(response.status, body) }
    }

    /// Downloads a run artifact through the server's artifact proxy into a
    /// local file (written whole: a temporary name, then renamed).
    public func downloadArtifact(artifactURI: String, path artifactPath: String, to localPath: String, limit: Int = 4 << 30) async throws {
        let prefix = "mlflow-artifacts:/"
        guard artifactURI.hasPrefix(prefix) else {
            throw APIError(status: 0, code: "UNSUPPORTED", message: "the run's artifact store (\(artifactURI)) is not served by the tracking server; start it with --serve-artifacts")
        }
        let base = String(artifactURI.dropFirst(prefix.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let path = (base + "/" + artifactPath).split(separator: "/").map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? String($0) }.joined(separator: "/")
        var request = HTTPClientRequest(url: trackingURI + "/api/2.0/mlflow-artifacts/artifacts/" + path)
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        let response = try await http.execute(request, timeout: .seconds(600))
        guard response.status.code < 300 else { throw Self.error(response.status, try await response.body.collect(upTo: 1 << 20)) }
        let temporary = localPath + ".part-\(UUID().uuidString.prefix(8))"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw YardError(.unavailable, field: localPath, "cannot write \(temporary)")
        }
        do {
            var total = 0
            for try await chunk in response.body {
                total += chunk.readableBytes
                guard total <= limit else { throw YardError(.invalidInput, field: artifactPath, "\(artifactPath) is over \(limit >> 20) MB") }
                try handle.write(contentsOf: Data(chunk.readableBytesView))
            }
            try handle.synchronize()
            try handle.close()
            guard rename(temporary, localPath) == 0 else { throw YardError(.unavailable, field: localPath, "cannot rename into \(localPath)") }
        } catch {
            try? handle.close()
            unlink(temporary)
            throw error
        }
    }

    // MARK: registry

    public func createRegisteredModel(_ name: String) async throws {
        do { _ = try await call(.POST, "/api/2.0/mlflow/registered-models/create", ["name": .string(name)]) }
        catch let error as APIError where error.code == "RESOURCE_ALREADY_EXISTS" {}
    }

    /// Creates a version and returns its number.
    public func createModelVersion(name: String, source: String, runID: String, tags: [String: String]) async throws -> String {
        let result = try await call(.POST, "/api/2.0/mlflow/model-versions/create", [
            "name": .string(name), "source": .string(source), "run_id": .string(runID),
            "tags": .array(tags.sorted { $0.key < $1.key }.map { ["key": .string($0.key), "value": .string($0.value)] }),
        ])
        guard let version = result["model_version"]?["version"]?.stringValue else {
            throw APIError(status: 0, code: "BAD_RESPONSE", message: "model-versions/create returned no version")
        }
        return version
    }

    /// The version of `name` created from this run, if there is one (so a
    /// repeated registration does not make a second version).
    public func modelVersion(name: String, runID: String) async throws -> String? {
        let result = try await call(.GET, "/api/2.0/mlflow/model-versions/search",
                                    query: ["filter": "name='\(name)' and run_id='\(runID)'", "max_results": "10"])
        return result["model_versions"]?.arrayValue?.compactMap { $0["version"]?.stringValue }.sorted { (Int($0) ?? 0) < (Int($1) ?? 0) }.first
    }

    public func setAlias(name: String, alias: String, version: String) async throws {
        _ = try await call(.POST, "/api/2.0/mlflow/registered-models/alias", ["name": .string(name), "alias": .string(alias), "version": .string(version)])
    }

    public func deleteAlias(name: String, alias: String) async throws {
        do { _ = try await call(.DELETE, "/api/2.0/mlflow/registered-models/alias", query: ["name": name, "alias": alias]) }
        catch let error as APIError where error.code == "RESOURCE_DOES_NOT_EXIST" {}
    }

    /// The version an alias points at.
    public func version(name: String, alias: String) async throws -> String? {
        do {
            let result = try await call(.GET, "/api/2.0/mlflow/registered-models/alias", query: ["name": name, "alias": alias])
            return result["model_version"]?["version"]?.stringValue
        } catch let error as APIError where error.code == "RESOURCE_DOES_NOT_EXIST" || error.code == "INVALID_PARAMETER_VALUE" {
            return nil
        }
    }

    // MARK: transport

    func call(_ method: HTTPMethod, _ path: String, _ body: [String: JSONValue]? = nil, query: [String: String] = [:]) async throws -> JSONValue {
        var url = trackingURI + path
        if !query.isEmpty {
            var components = URLComponents()
            components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
            url += "?" + (components.percentEncodedQuery ?? "")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(JSONValue.object(body))))
        }
        let response = try await http.execute(request, timeout: timeout)
        let data = try await response.body.collect(upTo: 32 << 20)
        guard response.status.code < 300 else { throw Self.error(response.status, data) }
        if data.readableBytes == 0 { return .object([:]) }
        return (try? JSONDecoder().decode(JSONValue.self, from: Data(data.readableBytesView))) ?? .object([:])
    }

    static func error(_ status: HTTPResponseStatus, _ body: ByteBuffer) -> APIError {
        let json = try? JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
        return APIError(status: Int(status.code), code: json?["error_code"]?.stringValue ?? "HTTP_\(status.code)",
                        message: json?["message"]?.stringValue ?? String(String(buffer: body).prefix(200)))
    }
}

/// Reads a whole file into a buffer (artifacts are weights and plots: tens of MB at most).
enum FileBytes {
    static func read(_ path: String) throws -> ByteBuffer {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw YardError(.notFound, field: path, "cannot read \(path)")
        }
        return ByteBuffer(bytes: data)
    }
}
