import Foundation
import Hummingbird
import YardDomain
import YardStore
import YardWorker

/// `/api/jobs`: submit, list, show, stop, resume, events (SSE) and logs.
struct JobsController<Context: RequestContext> {
    let control: JobControl
    /// Relative paths in a config posted to the API resolve against this folder.
    let baseDirectory: String
    var store: any JobStore { control.store }

    static var maxBodySize: Int { 1 << 20 }

    func addRoutes(to group: RouterGroup<Context>) {
        group.post(use: submit)
        group.get(use: list)
        group.get("{id}", use: show)
        group.post("{id}/stop", use: stop)
        group.post("{id}/resume", use: resume)
        group.get("{id}/events", use: events)
        group.get("{id}/logs", use: logs)
    }

    @Sendable func submit(_ request: Request, context: Context) async throws -> Response {
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: Self.maxBodySize) } catch {
            throw YardError(.invalidInput, field: "body", "body: the config is larger than 1 MiB")
        }
        let text = String(buffer: body)
        let parser = JobConfigParser(baseDirectory: baseDirectory) { FileManager.default.fileExists(atPath: $0) }
        let config = try parser.parse(text, source: "body")
        let commit = request.headers.first { $0.name.canonicalName == "x-yard-git-commit" }?.value
        let job = try await control.submit(config, gitCommit: commit.flatMap(Self.validCommit))
        return try JSONResponse.make(["id": job.id, "state": job.state.rawValue], status: .created)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 100, 1), 1000)
        let state = request.uri.queryParameters.get("state")
        var jobs = try await store.jobs(limit: limit)
        if let state {
            guard let wanted = JobState(rawValue: state) else {
                throw YardError.invalid("state", "unknown state \(state); use one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            jobs = jobs.filter { $0.state == wanted }
        }
        return try JSONResponse.make(["jobs": jobs])
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        let id = try jobID(context)
        let job = try await store.require(id)
        guard case .object(var detail) = try JSONResponse.value(job) else { throw YardError(.internal, "job encoding") }
        detail["epoch_metrics"] = try JSONResponse.value(try await store.epochs(of: id))
        detail["artifacts"] = try JSONResponse.value(try await store.artifacts(of: id))
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
        _ = try await store.require(id)
        let lastEventID = request.headers.first { $0.name.canonicalName == "last-event-id" }.flatMap { Int64($0.value) }
        let after = lastEventID ?? request.uri.queryParameters.get("after", as: Int64.self) ?? 0
        let store = self.store
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                var cursor = after
                var idle = ContinuousClock.now
                while !Task.isCancelled {
                    let batch = try await store.events(of: id, after: cursor, limit: 500)
                    for event in batch {
                        let data = String(decoding: try JSONResponse.encoder.encode(event.payload), as: UTF8.self)
                        try await writer.write(ByteBuffer(string: "id: \(event.id)\nevent: \(event.type)\ndata: \(data)\n\n"))
                        cursor = event.id
                    }
                    if batch.count == 500 { continue }
                    if !batch.isEmpty { idle = .now }
                    if let job = try await store.job(id), job.state.isTerminal, batch.isEmpty { break }
                    if ContinuousClock.now - idle > .seconds(15) {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        idle = .now
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
                try await writer.finish(nil)
            })
    }

    /// The training log as text; with `?follow=true` it streams until the job ends.
    @Sendable func logs(_ request: Request, context: Context) async throws -> Response {
        let id = try jobID(context)
        _ = try await store.require(id)
        let follow = request.uri.queryParameters.get("follow").map { $0 == "true" || $0 == "1" } ?? false
        let store = self.store
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; charset=utf-8"],
            body: ResponseBody { writer in
                var cursor: Int64 = 0
                while !Task.isCancelled {
                    let lines = try await store.logs(of: id, after: cursor, limit: 1000)
                    if !lines.isEmpty {
                        try await writer.write(ByteBuffer(string: lines.map { $0.line + "\n" }.joined()))
                        cursor = lines.last!.id
                    }
                    if lines.count == 1000 { continue }
                    guard follow else { break }
                    if let job = try await store.job(id), job.state.isTerminal, lines.isEmpty { break }
                    try await Task.sleep(for: .milliseconds(250))
                }
                try await writer.finish(nil)
            })
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
