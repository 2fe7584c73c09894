import Foundation
import Glibc
import Synchronization
import YardDomain
import YardEngine

/// What a predict request asks besides its images (Ultralytics' own names).
public struct PredictOptions: Sendable, Equatable {
    public var conf = 0.25
    public var iou = 0.7
    public var imgsz: Int?
    public var maxDet = 300
    public var classes: [Int]?
    public var topK = 5
    /// The model's face blurring, done by the predictor before the model sees the image.
    public var blurFaces: FaceBlur?

    public init() {}

    var header: [String: JSONValue] {
        var header: [String: JSONValue] = ["conf": .double(conf), "iou": .double(iou), "max_det": .int(maxDet), "top_k": .int(topK)]
        if let imgsz { header["imgsz"] = .int(imgsz) }
        if let classes { header["classes"] = .array(classes.map { .int($0) }) }
        if let blurFaces {
            header["blur_faces"] = ["scale_factor": .double(blurFaces.scaleFactor), "min_neighbors": .int(blurFaces.minNeighbors),
                                    "min_size": .int(blurFaces.minSize), "detect_side": .int(blurFaces.detectSide)]
        }
        return header
    }
}

/// One engine process in serve mode (`python -m trainyard_engine serve`):
/// one model version loaded once, one request at a time (the pool sees to
/// that). Requests go down its stdin as a JSON header line and the images'
/// bytes; answers come back as JSON lines on its stdout.
final class Predictor: Sendable {
    struct Ready: Sendable {
        var task: String
        /// torch, or onnx (an `.onnx` file, run by onnxruntime).
        var runtime: String
        var names: [Int: String]
        var loadMilliseconds: Double
        var threads: Int
        /// A sample photo the engine ships (the health check's image).
        var sample: String?
    }

    let process: Process
    let threads: Int
    private let input: ProcessInput
    private let residentAtLoad = Mutex<Int64>(0)
    private let state = Mutex<State>(State())
    private let readyLine: Mutex<CheckedContinuation<JSONValue, any Error>?> = Mutex(nil)

    struct State {
        var waiting: CheckedContinuation<JSONValue, any Error>?
        var ended: String?
        /// It ended by a signal this side did not send (kill -9, the OOM killer).
        var crashed = false
        var ready: JSONValue?
    }

    /// Starts the process; the model loads in it (`awaitLoaded` waits for that).
    static func launch(engine: EngineEnvironment, weights: String, task: String? = nil, threads: Int) throws -> Predictor {
        try Predictor(engine: engine, weights: weights, task: task, threads: threads)
    }

    /// Waits until the process has loaded the model; stopped if it does not.
    /// A process killed by a signal meanwhile (not by this side) throws
    /// `PredictorCrashed`: the model may load fine in another.
    func awaitLoaded(timeout: Duration) async throws -> Ready {
        do {
            let line = try await awaitReady(timeout: timeout)
            let names = Dictionary(uniqueKeysWithValues: (line["names"]?.objectValue ?? [:]).compactMap { key, value in
                Int(key).flatMap { k in value.stringValue.map { (k, $0) } } })
            let resident = residentBytes
            residentAtLoad.withLock { $0 = resident }
            return Ready(task: line["task"]?.stringValue ?? "detect", runtime: line["runtime"]?.stringValue ?? "torch", names: names,
                         loadMilliseconds: line["load_ms"]?.doubleValue ?? 0, threads: line["threads"]?.intValue ?? threads,
                         sample: line["sample"]?.stringValue)
        } catch {
            stop(kill: true)
            throw error
        }
    }

    private init(engine: EngineEnvironment, weights: String, task: String?, threads: Int) throws {
        self.threads = threads
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        let arguments = ["serve", "--model", weights, "--threads", String(threads)] + (task.map { ["--task", $0] } ?? [])
        process = try engine.startEngine(arguments) { process in
            process.standardInput = stdin
            process.standardOutput = stdout
            process.standardError = stderr
        }
        // A photo (100 KB-1 MB) goes down in one write instead of 64 KB at a
        // time, each waiting for the predictor to read: fewer switches
        // between the two processes per request.
        input = ProcessInput(stdin.fileHandleForWriting, label: "yard-predictor-write", pipeSize: 1 << 20)
        let fd = dup(stdout.fileHandleForReading.fileDescriptor)
        try? stdout.fileHandleForReading.close()
        let errorFD = dup(stderr.fileHandleForReading.fileDescriptor)
        try? stderr.fileHandleForReading.close()
        let process = self.process
        // Its last words on stderr say why it ended (a file that is not a model, ...).
        let lastWords = Mutex<[String]>([])
        let errorsRead = Mutex(false)
        readLines(from: errorFD, name: "yard-predictor-err", line: { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { return }
            lastWords.withLock { $0 = Array(($0 + [String(trimmed.prefix(300))]).suffix(3)) }
        }, done: { errorsRead.withLock { $0 = true } })
        readLines(from: fd, name: "yard-predictor", line: { [self] line in deliver(line) }, done: { [self] in
            process.waitUntilExit()
            // stderr closes with the process: wait a moment for its last line.
            for _ in 0..<20 where !errorsRead.withLock({ $0 }) { usleep(10_000) }
            let words = lastWords.withLock { $0.last }
            let signalled = process.terminationReason == .uncaughtSignal
            let how = signalled ? "was killed (signal \(process.terminationStatus))" : "ended (exit \(process.terminationStatus))"
            end("the predictor process \(how)" + (words.map { ": \(Redaction.redactText($0))" } ?? ""), crashed: signalled)
        })
    }

    var isAlive: Bool { process.isRunning && state.withLock { $0.ended == nil } && Self.running(pid) }

    /// Whether the process is there and not a zombie: one killed a moment
    /// ago is a zombie before `Process` (and the pipe reader) see it end, and
    /// a request sent to it would count as one that killed its predictor.
    private static func running(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let name = stat.lastIndex(of: ")") else { return false }
        let state = stat[name...].dropFirst(2).first
        return state != "Z" && state != "X"
    }
    var pid: Int32 { process.processIdentifier }

    /// Its resident memory once the model had loaded (0 before).
    var loadedResidentBytes: Int64 { residentAtLoad.withLock { $0 } }

    /// Resident memory of the process, in bytes (from /proc).
    var residentBytes: Int64 {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int64(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb * 1024
    }

    private func awaitReady(timeout: Duration) async throws -> JSONValue {
        try await withThrowingTaskGroup(of: JSONValue.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { continuation in
                    let early = self.state.withLock { state -> Result<JSONValue, any Error>? in
                        if let ready = state.ready { return .success(ready) }
                        if let ended = state.ended { return .failure(Self.loadFailure(ended, crashed: state.crashed)) }
                        self.readyLine.withLock { $0 = continuation }
                        return nil
                    }
                    if let early { continuation.resume(with: early) }
                }
            }
            group.addTask {
                do { try await Task.sleep(for: timeout) } catch {
                    // Cancelled: after the ready line (nothing to do), or a
                    // load given up (a shutdown): then the process goes too.
                    if self.state.withLock({ $0.ready == nil }) {
                        self.end("the load was cancelled")
                        self.stop(kill: true)
                    }
                    throw error
                }
                // Killed, so the wait for its ready line ends too (a group
                // waits for all its children).
                let why = "the model did not load within \(Int(timeout.timeInterval)) s"
                self.end(why)
                self.stop(kill: true)
                throw YardError(.unavailable, field: "model", why)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Sends one request and waits for its answer (`timeout`: a hung
    /// predictor is ended, and the request fails as a dead one's would).
    func predict(_ images: [Data], options: PredictOptions, timeout: Duration) async throws -> JSONValue {
        var header = options.header
        header["id"] = .int(1)
        header["sizes"] = .array(images.map { .int($0.count) })
        var payload = try JSONEncoder().encode(JSONValue.object(header))
        payload.append(UInt8(ascii: "\n"))
        for image in images { payload.append(image) }
        let bytes = payload
        let answered = Flag()
        let deadline = ContinuousClock.now + timeout
        return try await withThrowingTaskGroup(of: JSONValue.self) { group in
            group.addTask {
                defer { answered.set() }
                return try await withCheckedThrowingContinuation { continuation in
                    let ended = self.state.withLock { state -> String? in
                        if let ended = state.ended { return ended }
                        state.waiting = continuation
                        return nil
                    }
                    if let ended {
                        continuation.resume(throwing: PredictorDied(reason: ended))
                        return
                    }
                    self.input.write(bytes) { why in self.end("cannot write to the predictor: \(why)") }
                }
            }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                // Cancelled before the answer (the request was given up): the
                // group still waits for the answer, so a hung predictor must
                // still be killed at the deadline, or it would hold its slot
                // for ever. Checked in short steps the cancellation cannot cut.
                while !answered.isSet && ContinuousClock.now < deadline {
                    await Task.detached { try? await Task.sleep(for: .milliseconds(100)) }.value
                }
                if answered.isSet { throw CancellationError() }
                self.stop(kill: true)
                throw PredictorDied(reason: "the predictor did not answer within \(Int(timeout.timeInterval)) s")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private func deliver(_ line: String) {
        guard let answer = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) else {
            // Answers are matched by order: an unreadable line is the answer
            // in flight, failed, never dropped (the next would be taken for it).
            let unreadable: JSONValue = ["error": .string("the predictor sent an answer that is not JSON: \(line.prefix(120))")]
            state.withLock { state in defer { state.waiting = nil }; return state.waiting }?.resume(returning: unreadable)
            return
        }
        if answer["ready"] == .bool(true) {
            let waiter = state.withLock { state -> CheckedContinuation<JSONValue, any Error>? in
                state.ready = answer
                return readyLine.withLock { c in defer { c = nil }; return c }
            }
            waiter?.resume(returning: answer)
            return
        }
        state.withLock { state in defer { state.waiting = nil }; return state.waiting }?.resume(returning: answer)
    }

    /// Fails the request in flight; later ones fail at once. The first
    /// reason given is the one kept (a kill from this side says why first).
    func end(_ why: String, crashed: Bool = false) {
        let (waiting, ready, reason, crash) = state.withLock { state in
            if state.ended == nil {
                state.ended = why
                state.crashed = crashed
            }
            defer { state.waiting = nil }
            return (state.waiting, readyLine.withLock { c in defer { c = nil }; return c }, state.ended ?? why, state.crashed)
        }
        waiting?.resume(throwing: PredictorDied(reason: reason))
        ready?.resume(throwing: Self.loadFailure(reason, crashed: crash))
    }

    private static func loadFailure(_ why: String, crashed: Bool) -> any Error {
        crashed ? PredictorCrashed(reason: why) : YardError(.unavailable, field: "model", "the model could not be loaded: \(why)")
    }

    func stop(kill: Bool = false) {
        end("the predictor was stopped")
        if process.isRunning {
            if kill { Glibc.kill(process.processIdentifier, SIGKILL) } else { process.terminate() }
        }
        input.close()
    }
}

/// A flag set once, read from any task.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// The predictor process was killed by a signal (not sent by the pool)
/// while it loaded the model: not a model that cannot load.
struct PredictorCrashed: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// The predictor process ended (or hung) with a request in flight.
struct PredictorDied: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}
