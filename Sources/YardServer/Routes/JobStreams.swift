import Foundation
import Hummingbird
import NIOCore
import ServiceLifecycle
import YardDomain
import YardStore

/// What an open stream does when the server shuts down: it ends (its reader
/// reconnects later, with its cursor), and a client that has not taken the
/// last bytes `grace` after the shutdown began has its connection closed,
/// so a client that stopped reading never holds the server's shutdown.
enum StreamShutdown {
    static let grace = TimeAmount.seconds(5)

    /// Closes `channel` `grace` from now (nothing if it closed before).
    static func closeLater(_ channel: (any Channel)?) {
        guard let channel else { return }
        channel.eventLoop.scheduleTask(in: grace) { channel.close(promise: nil) }
    }
}

/// The streaming routes' loops: subscribe to the job's feed, catch up from
/// the store after the client's cursor, then write what the feed delivers.
/// A stream ends when the job ends or the server shuts down
/// (`StreamShutdown`); a slow client that lags reads the store again; an
/// idle one gets a keep-alive from the feed's single timer.
enum JobStreams {
    /// Server-Sent Events after `after`, until the job's terminal state event.
    /// `channel`: the request's connection, closed if its client holds the shutdown.
    static func events(store: any JobStore, jobID: String, after: Int64, channel: (any Channel)?,
                       writer: inout any ResponseBodyWriter) async throws {
        let subscription = store.feed.subscribe(jobID)
        defer { subscription.cancel() }
        try await withGracefulShutdownHandler {
            try await events(store: store, jobID: jobID, after: after, subscription: subscription, writer: &writer)
        } onGracefulShutdown: {
            subscription.cancel()
            StreamShutdown.closeLater(channel)
        }
    }

    private static func events(store: any JobStore, jobID: String, after: Int64, subscription: JobFeed.Subscription,
                               writer: inout any ResponseBodyWriter) async throws {
        var cursor = after
        // Returns whether the job has ended and everything up to its end was sent.
        func catchUp(_ writer: inout any ResponseBodyWriter) async throws -> Bool {
            while true {
                let batch = try await store.events(of: jobID, after: cursor, limit: 500)
                for event in batch { try await send(event, &writer) }
                if batch.count < 500 { break }
            }
            // Ended: its terminal state event was committed with the state, so it is sent by now.
            guard try await store.job(jobID)?.state.isTerminal ?? true else { return false }
            for event in try await store.events(of: jobID, after: cursor, limit: 500) { try await send(event, &writer) }
            return true
        }
        func send(_ event: JobEvent, _ writer: inout any ResponseBodyWriter) async throws {
            let data = String(decoding: try JSONResponse.encoder.encode(event.payload), as: UTF8.self)
            try await writer.write(ByteBuffer(string: "id: \(event.id)\nevent: \(event.type)\ndata: \(data)\n\n"))
            cursor = event.id
        }
        if try await catchUp(&writer) { return try await writer.finish(nil) }
        for await item in subscription {
            switch item {
            case .event(let event):
                guard event.id > cursor else { continue }
                try await send(event, &writer)
                if isEnd(event) { return try await writer.finish(nil) }
            case .lagged:
                if try await catchUp(&writer) { return try await writer.finish(nil) }
            case .heartbeat:
                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
            case .logs:
                continue
            }
        }
        try await writer.finish(nil)
    }

    /// The training log; with `follow`, then new lines until the job ends.
    static func logs(store: any JobStore, jobID: String, follow: Bool, channel: (any Channel)?,
                     writer: inout any ResponseBodyWriter) async throws {
        let subscription = follow ? store.feed.subscribe(jobID) : nil
        defer { subscription?.cancel() }
        try await withGracefulShutdownHandler {
            try await logs(store: store, jobID: jobID, subscription: subscription, writer: &writer)
        } onGracefulShutdown: {
            subscription?.cancel()
            StreamShutdown.closeLater(channel)
        }
    }

    private static func logs(store: any JobStore, jobID: String, subscription: JobFeed.Subscription?,
                             writer: inout any ResponseBodyWriter) async throws {
        var cursor: Int64 = 0
        func send(_ lines: [LogLine], _ writer: inout any ResponseBodyWriter) async throws {
            let fresh = lines.filter { $0.id > cursor }
            guard let last = fresh.last else { return }
            try await writer.write(ByteBuffer(string: fresh.map { $0.line + "\n" }.joined()))
            cursor = last.id
        }
        func catchUp(_ writer: inout any ResponseBodyWriter) async throws {
            while true {
                let lines = try await store.logs(of: jobID, after: cursor, limit: 1000)
                try await send(lines, &writer)
                if lines.count < 1000 { break }
            }
        }
        try await catchUp(&writer)
        guard let subscription, !(try await store.job(jobID)?.state.isTerminal ?? true) else {
            if subscription != nil { try await catchUp(&writer) }
            return try await writer.finish(nil)
        }
        for await item in subscription {
            switch item {
            case .logs(let lines):
                try await send(lines, &writer)
            case .lagged:
                try await catchUp(&writer)
                if try await store.job(jobID)?.state.isTerminal ?? true { return try await writer.finish(nil) }
            case .event(let event) where isEnd(event):
                // The worker writes the last lines before it settles the job.
                try await catchUp(&writer)
                return try await writer.finish(nil)
            case .event, .heartbeat:
                continue
            }
        }
        try await writer.finish(nil)
    }

    /// A `state` event into a terminal state.
    static func isEnd(_ event: JobEvent) -> Bool {
        event.type == "state" && (event.payload["state"]?.stringValue.flatMap(JobState.init(rawValue:))?.isTerminal ?? false)
    }
}
