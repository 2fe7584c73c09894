import Foundation
import Hummingbird
import YardDatasets
import YardDomain
import YardJobs
import YardStore

/// `/api/datasets`: registered datasets, their versions, validation reports,
/// and adding a version (progress streamed as JSON lines).
struct DatasetsController<Context: RequestContext> {
    let service: DatasetService

    func addRoutes(to group: RouterGroup<Context>) {
        group.get(use: list)
        group.post(use: add)
        group.get("{name}", use: show)
        group.get("{name}/versions/{version}/report", use: report)
    }

    /// One row per dataset: its latest version and how many it has.
    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let versions = try await service.store.datasetVersions(name: nil)
        var latest: [String: DatasetVersion] = [:]
        var counts: [String: Int] = [:]
        for version in versions {
            counts[version.name, default: 0] += 1
            if (latest[version.name]?.number ?? 0) < version.number { latest[version.name] = version }
        }
        let rows = latest.keys.sorted().map { name -> JSONValue in
            var row = (try? JSONResponse.value(latest[name]!)) ?? .null
            if case .object(var fields) = row { fields["versions"] = .int(counts[name]!); row = .object(fields) }
            return row
        }
        return try JSONResponse.make(["datasets": rows])
    }

    /// Every version, newest first, each with the jobs that trained on it.
    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        try DatasetVersion.validateName(name)
        let versions = try await service.store.datasetVersions(name: name).sorted { $0.number > $1.number }
        guard !versions.isEmpty else { throw YardError(.notFound, field: "name", "no dataset \(name); `yard datasets list` lists them") }
        var rows: [JSONValue] = []
        for version in versions {
            var row = try JSONResponse.value(version)
            let jobs = try await service.store.jobs(usingDataset: version.reference, limit: 100)
            if case .object(var fields) = row {
                fields["jobs"] = .array(jobs.map { .object(["id": .string($0.id), "state": .string($0.state.rawValue), "fitness": $0.fitness.map(JSONValue.double) ?? .null]) })
                fields["path"] = .string(service.library.dataPath(version.id))
                row = .object(fields)
            }
            rows.append(row)
        }
        return try JSONResponse.make(["name": .string(name), "versions": .array(rows)] as [String: JSONValue])
    }

    @Sendable func report(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let wanted = try context.parameters.require("version")
        let version = try await JobControlLookup.version(name: name, version: wanted, store: service.store)
        guard let report = service.library.report(version.id) else {
            throw YardError(.notFound, field: "version", "dataset \(name)@\(version.number) has no stored report (its folder is gone)")
        }
        return try JSONResponse.make(report)
    }

    /// `POST /api/datasets` `{"name", "source", "format"?, "split"?, "seed"?, "names"?}`:
    /// a bad request is a 4xx at once; then 200 and one JSON line per
    /// progress step, the last `{"added": {...}}` or `{"error": ...}`.
    @Sendable func add(_ request: Request, context: Context) async throws -> Response {
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: 64 << 10) } catch {
            throw YardError(.invalidInput, field: "body", "body: larger than 64 KiB")
        }
        let body: DatasetService.AddRequest
        do { body = try JSONDecoder().decode(DatasetService.AddRequest.self, from: Data(buffer.readableBytesView)) } catch {
            throw YardError(.invalidInput, field: "body", #"body: expected JSON like {"name": "coco8", "source": "/data/coco8", "split": "0.8,0.1,0.1", "seed": 0}"#)
        }
        _ = try service.check(body)
        // Refused before the import starts (the job layer checks again when it records the version).
        try await DatasetControl(store: service.store).authorise(name: body.name)
        let service = self.service
        let (lines, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let task = Task {
            do {
                let added = try await service.add(body) { step in
                    switch step {
                    case .waiting: continuation.yield(#"{"waiting": "another import runs; this one follows"}"#)
                    case .phase(let phase, let done, let total): continuation.yield(#"{"phase": "\#(phase)", "done": \#(done), "total": \#(total)}"#)
                    }
                }
                let data = try JSONResponse.encoder.encode(["added": added])
                continuation.yield(String(decoding: data, as: UTF8.self))
            } catch let error as YardError {
                let data = (try? JSONEncoder().encode(["error": error.code.description, "message": error.message, "field": error.field ?? ""])) ?? Data()
                continuation.yield(String(decoding: data, as: UTF8.self))
            } catch {
                continuation.yield(#"{"error": "internal", "message": "the import failed; see the server log"}"#)
            }
            continuation.finish()
        }
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
            for await line in lines { try await writer.write(ByteBuffer(string: line + "\n")) }
            _ = await task.value
            try await writer.finish(nil)
        })
    }
}

enum JobControlLookup {
    static func version(name: String, version: String, store: any JobStore) async throws -> DatasetVersion {
        let reference = try DatasetReference.parse("dataset:\(name)@\(version)", field: "version")
        return try await JobControl.resolve(reference, in: store)
    }
}
