import CYardSpawn
import Foundation
import Logging
import Synchronization
import YardDomain

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs the Python engine as a child process: the spec as a JSON file,
/// events on descriptor 3, stdout and stderr together as the log.
///
/// With a `WarmEngine` (the default for `yard up` and `yard worker`), the
/// engine for the next job is started ahead of need with Python, torch and
/// Ultralytics already imported, and a job only hands it its spec: the
/// start-up of a short job (most of a sweep's trial) is paid while the
/// worker waits or trains the job before. One job per process stays the rule.
public struct PythonEngineRunner: EngineRunner {
    public let environment: EngineEnvironment
    /// Set for every engine this runner starts (a pinned worker's `CUDA_VISIBLE_DEVICES`).
    public let extraEnvironment: [String: String]
    /// The engine kept warm for the next job; nil: each job starts its own (`--no-warm-engine`).
    public let warm: WarmEngine?

    public init(environment: EngineEnvironment, extraEnvironment: [String: String] = [:], warm: Bool = false) {
        self.init(environment: environment, extraEnvironment: extraEnvironment,
                  warm: warm ? WarmEngine(environment: environment, extraEnvironment: extraEnvironment) : nil)
    }

    public init(environment: EngineEnvironment, extraEnvironment: [String: String] = [:], warm: WarmEngine?) {
        self.environment = environment
        self.extraEnvironment = extraEnvironment
        self.warm = warm
    }

    public func start(_ request: EngineRequest) async throws -> any EngineProcess {
        let fm = FileManager.default
        try fm.createDirectory(atPath: request.workDirectory, withIntermediateDirectories: true)
        let specPath = request.workDirectory + "/spec.json"
        let data = try JSONEncoder().encode(request.spec)
        try AtomicFile.write(data, to: specPath, permissions: 0o600)
        if let warm {
            defer { Task { await warm.fill() } }  // the next job's engine starts as this one is taken
            if let process = await warm.take(spec: specPath, directory: request.workDirectory) { return process }
        }
        let arguments = [environment.python, "-m", "trainyard_engine", "train", "--spec", specPath, "--events-fd", "3", "--parent-pid", String(getpid())]
        return try ChildProcess.spawn(arguments: arguments, environment: environment.processEnvironment(extra: extraEnvironment),
                                      directory: request.workDirectory)
    }

    public func prepare() async { await warm?.fill() }
    public func close() async { await warm?.close() }
}

/// A spawned engine with its two output pipes read on dedicated threads.
final class ChildProcess: EngineProcess, Sendable {
    let pid: pid_t
    let output: AsyncStream<EngineOutput>
    private let exit: ExitWaiter

    private init(pid: pid_t, output: AsyncStream<EngineOutput>, exit: ExitWaiter) {
        self.pid = pid
        self.output = output
        self.exit = exit
    }

    /// Starts the engine; with `input`, that descriptor is its stdin (a warm
    /// engine's job arrives there), else /dev/null.
    static func spawn(arguments: [String], environment: [String: String], directory: String, input: Int32? = nil) throws -> ChildProcess {
        let events = try Pipe2()
        let logs = try Pipe2()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let input {
            posix_spawn_file_actions_adddup2(&actions, input, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, logs.write, 1)
        posix_spawn_file_actions_adddup2(&actions, logs.write, 2)
        posix_spawn_file_actions_adddup2(&actions, events.write, 3)
        cyard_spawn_addchdir(&actions, directory)
        cyard_spawn_addclosefrom(&actions, 4)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group: a Ctrl-C at the terminal reaches the worker, which
        // then stops the engine gracefully, instead of killing it mid-save.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGPIPE, SIGCHLD] { sigaddset(&defaults, sig) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        close(events.write)
        close(logs.write)
        guard rc == 0 else {
            close(events.read)
            close(logs.read)
            throw YardError(.unavailable, field: "python",
                            "cannot start the engine with \(arguments[0]): \(String(cString: strerror(rc))); run `yard doctor`")
        }

        let (stream, continuation) = AsyncStream.makeStream(of: EngineOutput.self, bufferingPolicy: .unbounded)
        let readers = ReaderGroup(count: 2) { continuation.finish() }
        readLines(from: events.read, name: "engine-events") { line in
            do {
                if let event = try EngineEvent.decode(line: line) { continuation.yield(.event(event)) }
            } catch {
                continuation.yield(.protocolError(line))
            }
        } done: { readers.oneDone() }
        readLines(from: logs.read, name: "engine-log") { line in
            continuation.yield(.log(line))
        } done: { readers.oneDone() }
        return ChildProcess(pid: pid, output: stream, exit: ExitWaiter(pid: pid))
    }

    // Once reaped, the pid may belong to another process: signal only a live child.
    func requestStop() { if !exit.hasExited { Glibc.kill(pid, SIGTERM) } }
    func abandon() { if !exit.hasExited { Glibc.kill(pid, SIGUSR1) } }
    func kill() { if !exit.hasExited { Glibc.kill(pid, SIGKILL) } }
    func waitForExit() async -> Int32 { await exit.wait() }
    var hasExited: Bool { exit.hasExited }
}

/// Calls `finished` once all readers are done.
final class ReaderGroup: Sendable {
    private let remaining: Mutex<Int>
    private let finished: @Sendable () -> Void

    init(count: Int, finished: @escaping @Sendable () -> Void) {
        self.remaining = Mutex(count)
        self.finished = finished
    }

    func oneDone() {
        let last = remaining.withLock { remaining in
            remaining -= 1
            return remaining == 0
        }
        if last { finished() }
    }
}

/// Reaps the child on a thread of its own and hands its status to any waiter.
final class ExitWaiter: Sendable {
    private struct State {
        var status: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }

    private let state = Mutex(State())

    init(pid: pid_t) {
        let thread = Thread { [self] in
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            let code: Int32 = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            let ready = state.withLock { state in
                state.status = code
                defer { state.waiters = [] }
                return state.waiters
            }
            ready.forEach { $0.resume(returning: code) }
        }
        thread.name = "engine-reaper"
        thread.start()
    }

    var hasExited: Bool { state.withLock { $0.status != nil } }

    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = state.withLock { state -> Int32? in
                if state.status == nil { state.waiters.append(continuation) }
                return state.status
            }
            if let status { continuation.resume(returning: status) }
        }
    }
}

/// A pipe whose ends are closed on exec (dup2 into the child clears that).
struct Pipe2 {
    let read: Int32
    let write: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard cyard_pipe_cloexec(&fds) == 0 else {
            throw YardError(.unavailable, "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        read = fds[0]
        write = fds[1]
    }
}
