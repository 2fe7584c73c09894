import Foundation
import Logging
import ServiceLifecycle
import YardArtifacts
import YardDomain
import YardEngine
import YardQueue
import YardStore
import YardTracker

/// A worker: claims one job at a time from the queue, runs the engine on it,
/// and turns the engine's events into records. On graceful shutdown it stops
/// its engine at a checkpoint and puts the job back in the queue, so the
/// next start resumes it.
public struct Worker: Service {
    public struct Configuration: Sendable {
        public var id: String
        /// Run folders (`runs/JOB`) and job folders (`jobs/JOB`) live here.
        public var dataDirectory: String
        /// How long a stopping engine may take before it is killed.
        public var stopGrace: Duration
        /// Extra train args a worker imposes (e.g. its GPU as `device`).
        public var trainOverrides: [String: JSONValue]
        /// Whether a dataset may hold symlinks to files outside its folder.
        public var allowExternalSymlinks: Bool

        public init(id: String, dataDirectory: String, stopGrace: Duration = .seconds(120),
                    trainOverrides: [String: JSONValue] = [:], allowExternalSymlinks: Bool = false) {
            self.id = id
            self.dataDirectory = dataDirectory
            self.stopGrace = stopGrace
            self.trainOverrides = trainOverrides
            self.allowExternalSymlinks = allowExternalSymlinks
        }
    }

    let configuration: Configuration
    let control: JobControl
    let runner: any EngineRunner
    let trackers: [any Tracker]
    let artifacts: any ArtifactStore
    let logger: Logger

    public init(configuration: Configuration, control: JobControl, runner: any EngineRunner,
                trackers: [any Tracker], artifacts: any ArtifactStore, logger: Logger) {
        self.configuration = configuration
        self.control = control
        self.runner = runner
        self.trackers = trackers
        self.artifacts = artifacts
        self.logger = logger
    }

    public func run() async throws {
        let shutdown = ShutdownFlag()
        try await withGracefulShutdownHandler {
            while !shutdown.isSet, !Task.isCancelled {
                do {
                    if let id = try await control.queue.claim(worker: configuration.id) {
                        try await JobRun(worker: self, jobID: id, shutdown: shutdown).execute()
                    } else {
                        await control.queue.waitForWork(timeout: .seconds(1))
                    }
                } catch {
                    logger.error("worker \(configuration.id): \(error)")
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        } onGracefulShutdown: {
            shutdown.set()
        }
    }

    /// Runs until the queue is empty, then returns (tests and `--burst`).
    public func drain() async throws {
        let shutdown = ShutdownFlag()
        while let id = try await control.queue.claim(worker: configuration.id) {
            try await JobRun(worker: self, jobID: id, shutdown: shutdown).execute()
        }
    }
}

/// Set once, read from anywhere.
final class ShutdownFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    private var nextToken = 0
    private var onSet: [Int: @Sendable () -> Void] = [:]

    var isSet: Bool { lock.withLock { value } }

    func set() {
        let callbacks = lock.withLock { () -> [@Sendable () -> Void] in
            value = true
            defer { onSet = [:] }
            return Array(onSet.values)
        }
        callbacks.forEach { $0() }
    }

    /// Runs `callback` when the flag is set (at once if it already is).
    /// Returns a token for `cancel`, so a finished job leaves nothing behind.
    @discardableResult
    func whenSet(_ callback: @escaping @Sendable () -> Void) -> Int {
        let (now, token) = lock.withLock { () -> (Bool, Int) in
            nextToken += 1
            if value { return (true, nextToken) }
            onSet[nextToken] = callback
            return (false, nextToken)
        }
        if now { callback() }
        return token
    }

    func cancel(_ token: Int) {
        lock.withLock { _ = onSet.removeValue(forKey: token) }
    }
}
