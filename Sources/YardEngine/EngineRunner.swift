import Foundation
import YardDomain

/// What a worker asks the engine to do: one job, written as a spec file.
public struct EngineRequest: Sendable {
    public var jobID: String
    /// The spec the engine reads (model, type, train args, project/name, resume).
    public var spec: JSONValue
    /// The job's own folder: the spec file and the engine's cwd live here.
    public var workDirectory: String

    public init(jobID: String, spec: JSONValue, workDirectory: String) {
        self.jobID = jobID
        self.spec = spec
        self.workDirectory = workDirectory
    }
}

/// What comes out of a running engine, in order.
public enum EngineOutput: Sendable {
    case event(EngineEvent)
    /// A line the engine (or Ultralytics) printed; ANSI colours removed.
    case log(String)
    /// A line on the event descriptor that is not a valid event.
    case protocolError(String)
}

/// Starts engines. Drivers: `PythonEngineRunner` (the real one) and, in tests,
/// scripted runners that replay events.
public protocol EngineRunner: Sendable {
    func start(_ request: EngineRequest) async throws -> any EngineProcess
    /// Called when a worker starts: get ready for its first job (a warm engine).
    func prepare() async
    /// Called when a worker stops: end what `prepare` started.
    func close() async
}

extension EngineProcess {
    public func abandon() { requestStop() }
}

extension EngineRunner {
    public func prepare() async {}
    public func close() async {}
}

/// A running engine.
public protocol EngineProcess: Sendable {
    /// Events and log lines; finishes when the engine closes its outputs.
    var output: AsyncStream<EngineOutput> { get }
    /// Asks for a graceful stop (the engine saves a resumable checkpoint).
    func requestStop()
    /// Stops a run that will not be resumed (a pruned trial): at the end of
    /// the current batch, without validating or saving.
    func abandon()
    /// Ends the engine at once.
    func kill()
    /// Waits for the process to end; its exit code (128+signal when killed).
    func waitForExit() async -> Int32
}
