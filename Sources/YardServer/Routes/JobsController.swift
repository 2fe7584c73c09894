import Foundation
import HTTPTypes
import Hummingbird
import YardArtifacts
import YardDomain
import YardJobs
import YardStore

/// `/api/jobs`: submit, list, show, stop, resume, events (SSE), logs and weights.
struct JobsController<Context: RequestContext> {
    let control: JobControl
    /// Where the engine's uploads are kept (`ID/weights/best.pt`); none: no weights route answers.
    var artifacts: (any ArtifactStore)? = nil
    /// `--allow-private-webhooks`: whether `notify.url` may be a literal private address.
    var allowPrivateWebhooks = true
    var store: any JobStore { control.store }

    /// Media types a config may be posted as (YAML, or JSON which is YAML too).
    static var configMediaTypes: Set<String> { [
        "application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain",
    ] }

    static var maxBodySize: Int { 1 << 20 }

    func addRoutes(to group: RouterGroup<Context>) {
        group.post(use: submit)
        group.get(use: list)
        group.get("{id}", use: show)
        group.post("{id}/stop", use: stop)
        group.post("{id}/resume", use: resume)
        group.get("{id}/events", use: events)
        group.get("{id}/logs", use: logs)
        group.get("{id}/weights", use: weights)
        group.get("{id}/artifact", use: artifact)
    }

    @Sendable func submit(_ request: Request, context: Context) async throws -> Response {
        let config = try await Self.config(from: request, allowPrivateWebhooks: allowPrivateWebhooks)
        let commit = request.headers.first { $0.name.canonicalName == "x-yard-git-commit" }?.value
        let dirty = request.headers.first { $0.name.canonicalName == "x-yard-git-dirty" }.flatMap { JobProvenance.gitState(header: $0.value) }
        let provenance = dirty.map { JobProvenance(gitDirty: $0.dirty, gitDiff: $0.diff) }
        let job = try await control.submit(config, gitCommit: commit.flatMap(Self.validCommit), provenance: provenance)
        return try JSONResponse.make(["id": job.id, "state": job.state.rawValue], status: .created)
    }

    /// A posted config (YAML or JSON, at most 1 MiB, UTF-8), validated; jobs and sweeps alike.
    static func config(from request: Request, allowPrivateWebhooks: Bool) async throws -> JobConfig {
        if let type = request.headers[.contentType] {
            let media = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            guard configMediaTypes.contains(media) else {
                throw APIError(status: .unsupportedMediaType, code: "invalid_input", field: "Content-Type",
                               message: "Content-Type: \(type.prefix(60)) is not a config; send application/yaml or application/json")
            }
        }
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: maxBodySize) } catch {
            throw YardError(.invalidInput, field: "body", "body: the config is larger than 1 MiB")
        }
        guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
            throw YardError(.invalidInput, field: "body", "body: not valid UTF-8; save the config as UTF-8 text")
        }
        // No base folder: the server cannot know the submitter's, so local paths must be absolute.
        var parser = JobConfigParser(baseDirectory: nil) { FileManager.default.fileExists(atPath: $0) }
        parser.allowPrivateWebhooks = allowPrivateWebhooks
        return try parser.parse(text, source: "body")
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let limit = try Query.int(request, "limit", in: 1...1000) ?? 100
        var wanted: JobState?
        if let state = Query.string(request, "state") {
            guard let known = JobState(rawValue: state) else {
                throw YardError.invalid("state", "unknown state \(state.prefix(40)); use one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            wanted = known
        }
        var query = JobQuery(limit: limit, state: wanted, owner: try Self.owner(request))
        query.experiment = Query.string(request, "experiment")
        query.model = Query.string(request, "model")
        query.dataset = Query.string(request, "dataset")
        if let before = Query.string(request, "before") {
            guard try await store.job(before) != nil else {
                throw YardError.invalid("before", "no job \(before.prefix(40)); give the id of the last job of the page before (its `next`)")
            }
            query.before = before
        }
        let jobs = try await store.jobs(query)
        // A full page may have more after it: `next` is the cursor for `?before=`.
        var body: [String: JSONValue] = ["jobs": try JSONResponse.value(jobs)]
        if jobs.count == limit, let last = jobs.last { body["next"] = .string(last.id) }
        return try JSONResponse.make(JSONValue.object(body))
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        let id = try jobID(context)
        let job = try await store.require(id)
        guard case .object(var detail) = try JSONResponse.value(job) else { throw YardError(.internal, "job encoding") }
        detail["epoch_metrics"] = try JSONResponse.value(try await store.epochs(of: id))
        detail["artifacts"] = try JSONResponse.value(try await store.artifacts(of: id))
        if job.state == .queued, let reason = try await control.queue.waitingReason(of: id) { detail["waiting"] = .string(reason) }
        return try JSONResponse.make(JSONValue.object(detail))
    }

    @Sendable func stop(_ request: Request, context: Context) async throws -> Response {
        try JSONResponse.make(try await control.stop(try jobID(context)))
    }

    @Sendable func resume(_ request: Request, context: Context) async throws -> Response {
        try JSONResponse.make(try await control.resume(try jobID(context)))
    }

    /// Server-Sent Events: every stored event after `Last-Event-ID` (or
    /// `?after=`), then new ones as they come; ends once the job has ended
    /// and everything was sent.
    @Sendable func events(_ request: Request, context: Context) async throws -> Response {
        let id = try jobID(context)
        let channel = (context as? YardRequestContext)?.channel
        _ = try await store.require(id)
        let after: Int64
        if let header = request.headers.first(where: { $0.name.canonicalName == "last-event-id" })?.value {
            guard let id = Int64(header), id >= 0 else {
                throw YardError.invalid("Last-Event-ID", "must be the id of an event (a non-negative integer), got \"\(header.prefix(40))\"")
            }
            after = id
        } else {
            after = Int64(try Query.int(request, "after", in: 0...Int.max) ?? 0)
        }
        let store = self.store
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody { writer in try await JobStreams.events(store: store, jobID: id, after: after, channel: channel, writer: &writer) })
    }

    /// The training log as text; with `?follow=true` it streams until the job ends.
    @Sendable func logs(_ request: Request, context: Context) async throws -> Response {
        let id = try jobID(context)
        let channel = (context as? YardRequestContext)?.channel
        _ = try await store.require(id)
        let follow = try Query.bool(request, "follow") ?? false
        let store = self.store
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                        body: ResponseBody { writer in try await JobStreams.logs(store: store, jobID: id, follow: follow, channel: channel, writer: &writer) })
    }

    /// The job's weights (`?which=best`, the default, or `last`) as the
    /// engine stored them in the server's artifact folder: what a client
    /// downloads without registering a model. Streamed from disk.
    @Sendable func weights(_ request: Request, context: Context) async throws -> Response {
        let id = try jobID(context)
        let job = try await store.require(id)
        let which = Query.string(request, "which") ?? "best"
        guard which == "best" || which == "last" else {
            throw YardError.invalid("which", "\"\(which.prefix(40))\" is not a weights file; use best or last")
        }
        let key = "\(id)/weights/\(which).pt"
        guard let artifacts, try await artifacts.exists(key: key) else {
            throw YardError(.notFound, field: "which", "job \(id) has no \(which) weights (it is \(job.state.rawValue)); they are stored when its training saves them")
        }
        let headers: HTTPFields = [.contentType: "application/octet-stream",
                                   .contentDisposition: "attachment; filename=\"\(id)-\(which).pt\""]
        return try await Self.file(key, from: artifacts, headers: headers, field: "which", context: context)
    }

    /// One file the job's training kept (`?name=results.png`,
    /// `weights/best.pt`): only a name the job's artifact records hold is
    /// served, so no spelling of a path reaches another file. Images and
    /// text are shown by the browser (the dashboard draws the plots inline);
    /// anything else is a download. `nosniff` is on every answer.
    @Sendable func artifact(_ request: Request, context: Context) async throws -> Response {
        let id = try jobID(context)
        _ = try await store.require(id)
        guard let name = Query.string(request, "name"), !name.isEmpty else {
            throw YardError.invalid("name", "give ?name= of one of the job's artifacts (GET /api/jobs/\(id) lists them)")
        }
        let key = "\(id)/\(name)"
        guard let artifacts, try await store.artifacts(of: id).contains(where: { $0.key == key }) else {
            throw YardError(.notFound, field: "name", "job \(id) has no artifact \(name.prefix(80)); GET /api/jobs/\(id) lists them")
        }
        let file = (name as NSString).lastPathComponent
        let media = artifactInlineTypes[(file as NSString).pathExtension.lowercased()]
        let safeName = String(file.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
        let headers: HTTPFields = [.contentType: media ?? "application/octet-stream",
                                   .contentDisposition: "\(media == nil ? "attachment" : "inline"); filename=\"\(id)-\(safeName)\""]
        return try await Self.file(key, from: artifacts, headers: headers, field: "name", context: context)
    }


    /// An artifact's bytes: streamed from the local folder, or fetched from a remote store first.
    static func file(_ key: String, from artifacts: any ArtifactStore, headers: HTTPFields, field: String, context: Context) async throws -> Response {
        if let local = artifacts as? LocalArtifactStore {
            // A put renames a whole file into place: an open one stays whole.
            return Response(status: .ok, headers: headers, body: try await FileIO().loadFile(path: try local.path(for: key), context: context))
        }
        let scratch = NSTemporaryDirectory() + "/yard-artifact-\(UUID().uuidString)"
        defer { unlink(scratch) }
        try await artifacts.get(key: key, to: scratch)
        guard let data = FileManager.default.contents(atPath: scratch) else { throw YardError(.unavailable, field: field, "\(key) could not be read from the artifact store") }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `?owner=NAME`, or `?mine=true`: the caller's own jobs.
    static func owner(_ request: Request) throws -> String? {
        let owner = Query.string(request, "owner")
        guard try Query.bool(request, "mine") == true else { return owner }
        guard let caller = Caller.current else {
            throw YardError.invalid("mine", "this request has no user (the server has no YARD_TOKEN); use ?owner=NAME")
        }
        guard owner == nil || owner == caller.name else { throw YardError.invalid("mine", "give ?mine=true or ?owner=NAME, not both") }
        return caller.name
    }

    /// A 40 or 64 hex-digit commit id, else nothing.
    static func validCommit(_ text: String) -> String? {
        (text.count == 40 || text.count == 64) && text.allSatisfy(\.isHexDigit) ? text.lowercased() : nil
    }

    private func jobID(_ context: Context) throws -> String {
        let id = try context.parameters.require("id")
        guard JobID.isValid(id) else { throw YardError(.notFound, field: "id", "no job \(id.prefix(40))") }
        return id
    }
}

/// What a browser may show of an artifact (never HTML or SVG: no script runs from a job's files).
let artifactInlineTypes = ["png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "csv": "text/csv; charset=utf-8",
                          "txt": "text/plain; charset=utf-8", "log": "text/plain; charset=utf-8", "yaml": "text/plain; charset=utf-8",
                          "json": "application/json"]
