import Foundation
import Hummingbird
import NIOCore
import ServiceLifecycle
import YardDomain
import YardStore

/// `GET /api/events`: the one log of the whole system as Server-Sent
/// Events. Every event after `Last-Event-ID` (or `?after=SEQ`), then each new
/// one as it commits, for as long as the client stays; filtered by
/// `?entity=job|sweep|model|dataset|worker`, `?id=`, `?type=state,epoch`,
/// `?state=failed` and `?experiment=NAME` (the events of that experiment's
/// jobs and sweeps); with `?follow=false` it ends once the log is read to
/// its present end. Each event's `id:` is its sequence number and its name
/// `ENTITY.TYPE` (`job.state`, `model.alias`). A client whose cursor is
/// below what retention removed first gets one `truncated` event saying so
/// and from where the log is whole again; it is never given a silent gap.
struct EventsController<Context: RequestContext> {
    let store: any JobStore
    /// Each event's frame encoded once for all readers, and each event loop's readers.
    let fanout = EventFanout()

    func addRoutes(to router: some RouterMethods<Context>) {
        router.get("/api/events") { request, context in
            try await stream(request, connection: (context as? YardRequestContext)?.channel)
        }
    }

    /// The stream; `connection` is the request's channel, written into directly while the reader keeps up.
    func stream(_ request: Request, connection: (any Channel)?) async throws -> Response {
        let after = try Self.cursor(request)
        let filter = try Self.filter(request)
        let follow = try Query.bool(request, "follow") ?? true
        let store = self.store, fanout = self.fanout
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody { writer in
                            let direct = if follow, let connection { await EventFanout.directConnection(connection) } else { nil as (any Channel)? }
                            try await EventLogStream.run(store: store, fanout: fanout, connection: direct, channel: connection, after: after,
                                                         filter: filter, follow: follow, writer: &writer)
                        })
    }

    /// `Last-Event-ID`, else `?after=`, else 0 (the whole retained log).
    static func cursor(_ request: Request) throws -> Int64 {
        if let header = request.headers.first(where: { $0.name.canonicalName == "last-event-id" })?.value {
            guard let id = Int64(header), id >= 0 else {
                throw YardError.invalid("Last-Event-ID", "must be the id of an event (a non-negative integer), got \"\(header.prefix(40))\"")
            }
            return id
        }
        return Int64(try Query.int(request, "after", in: 0...Int.max) ?? 0)
    }

    static func filter(_ request: Request) throws -> EventFilter {
        var filter = EventFilter()
        if let entity = Query.string(request, "entity") { filter.entity = try EventEntity.parse(String(entity)) }
        if let id = Query.string(request, "id") {
            guard !id.isEmpty, id.count <= 256 else { throw YardError.invalid("id", "must be 1-256 characters") }
            filter.id = String(id)
        }
        if let types = Query.string(request, "type") {
            let list = types.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !list.isEmpty, list.count <= 32, list.allSatisfy({ !$0.isEmpty && $0.count <= 64 && $0.allSatisfy { $0.isLetter || $0 == "_" } }) else {
                throw YardError.invalid("type", "a comma-separated list of event types such as state,epoch")
            }
            filter.types = Set(list)
        }
        if let experiment = Query.string(request, "experiment") {
            guard !experiment.isEmpty, experiment.count <= 256 else {
                throw YardError.invalid("experiment", "must be an experiment name of 1-256 characters")
            }
            filter.experiment = String(experiment)
        }
        if let state = Query.string(request, "state") {
            let text = String(state)
            guard JobState(rawValue: text) != nil || Sweep.State(rawValue: text) != nil else {
                throw YardError.invalid("state", "\"\(text.prefix(40))\" is not a job or sweep state")
            }
            filter.state = text
        }
        return filter
    }
}

/// The loop behind `/api/events`: subscribe to the whole log, catch up
/// from the store after the cursor, then follow. Following, the event loop
/// writes each commit into the connection (`EventReader`) until the reader
/// falls behind; then this task writes what is held through the response
/// writer, which waits for the client, or, when more was committed than a
/// reader may hold, reads the store again from its cursor. An idle stream
/// gets the feed's keep-alive.
enum EventLogStream {
    /// Most held events gathered for one write of the task's.
    static let piece = 1000

    /// `connection`: the channel the event loop writes into directly (nil: this task writes everything);
    /// `channel`: the request's, closed at shutdown if its client holds it (`StreamShutdown`).
    static func run(store: any JobStore, fanout: EventFanout = EventFanout(), connection: (any Channel)? = nil, channel: (any Channel)? = nil,
                    after: Int64, filter: EventFilter, follow: Bool = true, writer: inout any ResponseBodyWriter) async throws {
        let reader = EventReader(connection: connection, fanout: fanout, filter: filter, limit: store.feed.bufferLimit)
        let tap = store.feed.subscribeAll(reader)
        defer {
            tap.cancel()
            reader.close()
        }
        var cursor = after
        var told: Int64 = -1
        func catchUp(_ writer: inout any ResponseBodyWriter) async throws {
            let floor = try await store.eventFloor()
            if cursor < floor, told < floor {
                try await writer.write(ByteBuffer(string: "event: truncated\ndata: \(truncated(after: cursor, floor: floor))\n\n"))
                told = floor
            }
            while true {
                let batch = try await store.events(after: cursor, limit: 500, filter: filter)
                var out = ByteBuffer()
                for event in batch {
                    var frame = try fanout.frames.frame(event)
                    out.writeBuffer(&frame)
                    cursor = event.id
                }
                if out.readableBytes > 0 { try await writer.write(out) }
                if batch.count < 500 { break }
            }
        }
        // Catching up too: a client that stopped reading must not hold the shutdown then either.
        try await withGracefulShutdownHandler {
            try await catchUp(&writer)
        } onGracefulShutdown: {
            StreamShutdown.closeLater(channel)
        }
        guard follow else { return try await writer.finish(nil) }
        if let connection {
            // The client leaving ends the stream while the loop writes it (no write of this task fails then).
            connection.closeFuture.whenComplete { _ in reader.close() }
        }
        // The log never ends: a stream ends when its client leaves or the
        // server shuts down (a reader reconnects with its Last-Event-ID).
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                while true {
                    let (items, overflowed) = reader.take()
                    if overflowed {
                        try await catchUp(&writer)
                        continue
                    }
                    if !items.isEmpty {
                        // In pieces of at most `piece` events, each write awaited: the writer waits for a slow client.
                        var start = 0
                        while start < items.count {
                            var end = start, events = 0
                            while end < items.count, events < piece {
                                if case .events(let batch) = items[end] { events += batch.count }
                                end += 1
                            }
                            let slice = Array(items[start..<end])
                            if let buffer = try reader.render(slice, after: cursor) { try await writer.write(buffer) }
                            cursor = EventReader.last(slice, after: cursor)
                            start = end
                        }
                        continue
                    }
                    let (handback, handled) = await reader.follow(from: cursor)
                    cursor = handled
                    if handback == .closed { break }
                }
            } onCancel: {
                reader.close()
            }
        } onGracefulShutdown: {
            reader.close()
            StreamShutdown.closeLater(channel)
        }
        try await writer.finish(nil)
    }

    /// One event as an SSE frame: `id:` its sequence number, `event:` ENTITY.TYPE.
    static func frame(_ event: JobEvent) throws -> String {
        let data = String(decoding: try JSONResponse.encoder.encode(body(event)), as: UTF8.self)
        return "id: \(event.id)\nevent: \(event.entity.rawValue).\(event.type)\ndata: \(data)\n\n"
    }

    /// The JSON a reader of the log gets for an event (`yard events --json`, `/api/events`).
    static func body(_ event: JobEvent) -> JSONValue {
        var body: [String: JSONValue] = ["seq": .int(Int(event.id)), "entity": .string(event.entity.rawValue), "id": .string(event.jobID),
                                         "type": .string(event.type), "time": .string(ISO8601DateFormatter.yard.string(from: event.time)),
                                         "data": event.payload]
        if let experiment = event.experiment { body["experiment"] = .string(experiment) }
        return .object(body)
    }

    static func truncated(after: Int64, floor: Int64) -> String {
        let body: JSONValue = .object([
            "after": .int(Int(after)), "floor": .int(Int(floor)),
            "message": .string("retention removed epoch, progress, log and artifact events up to \(floor); state changes and every other event are whole. Read current state from /api/jobs, or go on from here"),
        ])
        return String(decoding: (try? JSONResponse.encoder.encode(body)) ?? Data(), as: UTF8.self)
    }
}

extension ISO8601DateFormatter {
    /// Times in the log: UTC with milliseconds.
    nonisolated(unsafe) static let yard: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
}
