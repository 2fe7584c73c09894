import Foundation
import Synchronization
import YardDomain

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A worker's next engine, started ahead of need: `train --warm` imports
/// Python, torch and Ultralytics (no CUDA initialised, no model built), then
/// waits on its stdin for one line, `{"spec": PATH, "cwd": DIR}`. Taking it
/// writes that line and closes the pipe; the worker starts the next one.
///
/// A warm engine is not used when it has died, is older than `maxAge`, or
/// was made from other files than the ones there now (the interpreter, the
/// engine's sources or requirements, the environment): it is killed and the
/// job starts a cold engine, as without warm engines. If the worker dies,
/// the engine's stdin reaches end of file and it exits.
public actor WarmEngine {
    struct Ready {
        let process: ChildProcess
        /// The write end of the engine's stdin.
        let input: Int32
        let fingerprint: String
        let born: ContinuousClock.Instant
    }

    let environment: EngineEnvironment
    let extraEnvironment: [String: String]
    let maxAge: Duration
    /// Where a waiting engine runs (it moves to the job's folder when it gets
    /// one): a private folder, as a job's is. Not a shared one like /tmp:
    /// `python -m` puts its working folder first on the module path, so a
    /// `torch.py` planted there would be imported.
    let directory: String
    private var ready: Ready?
    private var closed = false
    /// Jobs handed to a warm engine, and jobs that got a cold one instead (tests).
    public private(set) var taken = 0
    public private(set) var cold = 0

    public init(environment: EngineEnvironment, extraEnvironment: [String: String] = [:], maxAge: Duration = .seconds(1800),
                directory: String? = nil) {
        self.environment = environment
        self.extraEnvironment = extraEnvironment
        self.maxAge = maxAge
        self.directory = directory ?? environment.ultralyticsDirectory
        // Writing the job to an engine that died a moment ago must fail the
        // write, not kill this process (engines get SIGPIPE back at spawn).
        signal(SIGPIPE, SIG_IGN)
    }

    /// Starts a warm engine if none is waiting. A failure to start is left to
    /// the cold start of the next job, which reports it.
    public func fill() {
        guard !closed, ready == nil else { return }
        guard let fingerprint = try? environment.fingerprint(extra: extraEnvironment) else { return }
        guard (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])) != nil,
              let stdin = try? Pipe2() else { return }
        let arguments = [environment.python, "-m", "trainyard_engine", "train", "--warm", "--events-fd", "3", "--parent-pid", String(getpid())]
        do {
            let process = try ChildProcess.spawn(arguments: arguments, environment: environment.processEnvironment(extra: extraEnvironment),
                                                 directory: directory, input: stdin.read)
            Glibc.close(stdin.read)
            ready = Ready(process: process, input: stdin.write, fingerprint: fingerprint, born: .now)
        } catch {
            Glibc.close(stdin.read)
            Glibc.close(stdin.write)
        }
    }

    /// Hands a job to the waiting engine: nil when there is none fit to take it.
    func take(spec: String, directory: String) -> ChildProcess? {
        guard let engine = ready else {
            cold += 1
            return nil
        }
        ready = nil
        let current = try? environment.fingerprint(extra: extraEnvironment)
        guard !engine.process.hasExited, engine.fingerprint == current, engine.born.duration(to: .now) < maxAge else {
            discard(engine)
            cold += 1
            return nil
        }
        var line = (try? JSONEncoder().encode(["spec": spec, "cwd": directory])) ?? Data()
        line.append(UInt8(ascii: "\n"))
        let written = line.withUnsafeBytes { write(engine.input, $0.baseAddress, $0.count) }
        Glibc.close(engine.input)
        guard written == line.count else {
            engine.process.kill()
            cold += 1
            return nil
        }
        taken += 1
        return engine.process
    }

    /// Ends the waiting engine (the worker stops).
    public func close() {
        closed = true
        if let engine = ready { discard(engine) }
        ready = nil
    }

    /// The waiting engine's pid (tests).
    public var waitingPID: Int32? { ready?.process.pid }

    private func discard(_ engine: Ready) {
        Glibc.close(engine.input)  // end of file: it exits on its own if the kill is lost
        engine.process.kill()
    }
}
