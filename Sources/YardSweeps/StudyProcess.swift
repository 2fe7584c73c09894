import Foundation
import Glibc
import Synchronization
import YardDomain
import YardEngine

/// What a sweep asks of its study: the definition Optuna opens (or loads:
/// the study lives in Optuna's storage, so a restart carries on).
public struct StudyDefinition: Sendable, Equatable {
    public var name: String
    /// An Optuna storage URL (`sqlite:///...`, an RDB URL, or `redis://` for its journal storage).
    public var storage: String
    public var spec: SweepSpec

    public init(name: String, storage: String, spec: SweepSpec) {
        self.name = name
        self.storage = storage
        self.spec = spec
    }

    /// Finished trials before the median pruner may prune: Optuna's 5, or
    /// fewer in a small sweep (a third of it), so pruning can happen at all.
    var startupTrials: Int { min(5, max(1, spec.trials / 3)) }

    var request: [String: JSONValue] {
        var sampler: [String: JSONValue] = ["name": .string(spec.sampler.rawValue)]
        if let seed = spec.seed { sampler["seed"] = .int(seed) }
        var pruner: [String: JSONValue] = ["name": .string(spec.pruner.rawValue), "grace_period": .int(spec.gracePeriod), "startup_trials": .int(startupTrials)]
        if let factor = spec.reductionFactor { pruner["reduction_factor"] = .int(factor) }
        if let count = spec.bootstrapCount { pruner["bootstrap_count"] = .int(count) }
        return [
            "op": "open", "study": .string(name), "storage": .string(storage), "direction": .string(spec.direction.rawValue),
            "sampler": .object(sampler),
            "pruner": .object(pruner),
            "space": .array(spec.parameters.map(Self.encode)),
        ]
    }

    static func encode(_ parameter: SweepSpec.Parameter) -> JSONValue {
        let (kind, arguments): (String, [JSONValue]) = switch parameter.distribution {
        case .choice(let values): ("choice", values)
        case .uniform(let low, let high): ("uniform", [.double(low), .double(high)])
        case .logUniform(let low, let high): ("loguniform", [.double(low), .double(high)])
        case .range(let low, let high, let step): ("range", [.double(low), .double(high), .double(step)])
        case .int(let low, let high): ("int", [.int(low), .int(high)])
        }
        return ["name": .string(parameter.name), "kind": .string(kind), "args": .array(arguments)]
    }
}

/// One trial as the study knows it.
public struct StudyTrial: Sendable, Equatable {
    public enum State: String, Sendable { case running, complete, pruned, fail, waiting }
    public var number: Int
    public var state: State
    public var params: [String: JSONValue]
    public var value: Double?
    /// Reported values by step (epoch).
    public var intermediate: [Int: Double]

    init(_ json: JSONValue) throws(YardError) {
        guard let number = json["number"]?.intValue, let state = json["state"]?.stringValue.flatMap(State.init(rawValue:)) else {
            throw YardError(.unavailable, "the study process sent a trial that is not one: \(json)")
        }
        self.number = number
        self.state = state
        self.params = json["params"]?.objectValue ?? [:]
        self.value = json["value"]?.doubleValue
        var intermediate: [Int: Double] = [:]
        for (step, value) in json["intermediate"]?.objectValue ?? [:] {
            if let step = Int(step), let value = value.doubleValue { intermediate[step] = value }
        }
        self.intermediate = intermediate
    }
}

/// How a trial ended, as the study is told.
public enum TrialOutcome: Sendable, Equatable {
    case complete(Double?)
    case pruned
    case failed
}

/// The study protocol of a sweep, over the engine's study process
/// (`python -m trainyard_engine study`): one JSON line per request and per
/// answer, matched by id. Optuna runs there; nothing of it is
/// reimplemented here. The process is started on first use and again
/// after it dies (the studies it had open are opened again first); a
/// request that gets no answer within `timeout` kills it.
public actor StudyProcess {
    let engine: EngineEnvironment
    let timeout: Duration
    private var running: Running?
    private var nextID = 0
    private var opened: [String: StudyDefinition] = [:]

    public init(engine: EngineEnvironment, timeout: Duration = .seconds(120)) {
        self.engine = engine
        self.timeout = timeout
    }

    /// Opens (creating or loading) the study; returns its trials so far.
    @discardableResult
    public func open(_ definition: StudyDefinition) async throws -> [StudyTrial] {
        let answer = try await call(definition.request)
        opened[definition.name] = definition
        return try Self.trials(answer)
    }

    /// A new trial and its sampled values (`model`, `train.KEY`).
    public func ask(_ study: String) async throws -> (number: Int, params: [String: JSONValue]) {
        let answer = try await call(["op": "ask", "study": .string(study)])
        guard let number = answer["number"]?.intValue else { throw YardError(.unavailable, "the study process answered ask without a trial number") }
        return (number, answer["params"]?.objectValue ?? [:])
    }

    /// Reports a trial's fitness at a step (an epoch); true when the pruner says stop it.
    public func report(_ study: String, number: Int, step: Int, value: Double) async throws -> Bool {
        let value: JSONValue = value.isFinite ? .double(value) : .null
        return try await call(["op": "report", "study": .string(study), "number": .int(number), "step": .int(step), "value": value])["prune"]?.boolValue ?? false
    }

    public func tell(_ study: String, number: Int, _ outcome: TrialOutcome) async throws {
        var request: [String: JSONValue] = ["op": "tell", "study": .string(study), "number": .int(number)]
        switch outcome {
        case .complete(let value):
            request["state"] = "complete"
            request["value"] = value.map { $0.isFinite ? .double($0) : .null } ?? .null
        case .pruned: request["state"] = "pruned"
        case .failed: request["state"] = "fail"
        }
        _ = try await call(request)
    }

    public func trials(_ study: String) async throws -> [StudyTrial] {
        try Self.trials(try await call(["op": "trials", "study": .string(study)]))
    }

    public func best(_ study: String) async throws -> StudyTrial? {
        let answer = try await call(["op": "best", "study": .string(study)])
        guard let best = answer["best"], best != .null else { return nil }
        var object = best.objectValue ?? [:]
        object["state"] = "complete"
        return try StudyTrial(.object(object))
    }

    /// The running process' id, if one runs.
    public var processID: Int32? { running.flatMap { $0.isAlive ? $0.process.processIdentifier : nil } }

    /// Ends the process (the studies stay in their storage).
    public func close() {
        running?.stop()
        running = nil
    }

    static func trials(_ answer: [String: JSONValue]) throws -> [StudyTrial] {
        var result: [StudyTrial] = []
        for trial in answer["trials"]?.arrayValue ?? [] { result.append(try StudyTrial(trial)) }
        return result
    }

    /// Sends one request and waits for its answer.
    private func call(_ request: [String: JSONValue]) async throws -> [String: JSONValue] {
        let process = try await started()
        return try await exchange(request, on: process)
    }

    /// The running process; a new one (with the studies re-opened) when there is none.
    private func started() async throws -> Running {
        if let running, running.isAlive { return running }
        running?.stop()
        let fresh = try Running(engine: engine)
        running = fresh
        for definition in opened.values { _ = try await exchange(definition.request, on: fresh) }
        return fresh
    }

    private func exchange(_ request: [String: JSONValue], on process: Running) async throws -> [String: JSONValue] {
        nextID += 1
        let id = nextID
        var message = request
        message["id"] = .int(id)
        let line = String(decoding: try JSONEncoder().encode(JSONValue.object(message)), as: UTF8.self)
        let answer: JSONValue
        do {
            answer = try await process.send(line, id: id, timeout: timeout)
        } catch {
            // Hung or gone: its state is unknown; the next call starts a new one.
            process.stop(kill: true)
            throw error
        }
        guard answer["ok"]?.boolValue == true, let object = answer.objectValue else {
            let op = request["op"]?.stringValue ?? "?"
            // Optuna's errors may quote the storage URL: its password never leaves.
            let why = Redaction.redactText(answer["error"]?.stringValue ?? "no answer")
            throw YardError(.invalidInput, field: "sweeper", "study \(request["study"]?.stringValue ?? ""): \(op): \(why)")
        }
        return object
    }

    /// One study process: its stdin, a reader thread for its stdout, and
    /// the requests waiting for their answers.
    final class Running: Sendable {
        let process: Process
        let input: ProcessInput
        private let waiting = Mutex<(answers: [Int: CheckedContinuation<JSONValue, any Error>], ended: String?)>(([:], nil))

        init(engine: EngineEnvironment) throws {
            let stdin = Pipe(), stdout = Pipe()
            process = try engine.startEngine(["study"]) { process in
                process.standardInput = stdin
                process.standardOutput = stdout
                process.standardError = FileHandle.nullDevice
            }
            input = ProcessInput(stdin.fileHandleForWriting, label: "yard-study-write")
            // The reader owns its own descriptor (it closes it at the end).
            let fd = dup(stdout.fileHandleForReading.fileDescriptor)
            try? stdout.fileHandleForReading.close()
            let process = self.process
            readLines(from: fd, name: "yard-study", line: { [self] line in deliver(line) }, done: { [self] in
                end("the study process ended (exit \(process.isRunning ? "pending" : String(process.terminationStatus)))")
            })
        }

        var isAlive: Bool { process.isRunning && waiting.withLock { $0.ended == nil } }

        func send(_ line: String, id: Int, timeout: Duration) async throws -> JSONValue {
            try await withThrowingTaskGroup(of: JSONValue.self) { group in
                group.addTask {
                    try await withCheckedThrowingContinuation { continuation in
                        let ended = self.waiting.withLock { state -> String? in
                            if let ended = state.ended { return ended }
                            state.answers[id] = continuation
                            return nil
                        }
                        if let ended {
                            continuation.resume(throwing: YardError(.unavailable, ended))
                            return
                        }
                        self.input.write(Data((line + "\n").utf8)) { why in self.end("cannot write to the study process: \(why)") }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    // Fails the waiting request too, so the group can end.
                    let why = "the study process did not answer within \(Int(timeout.timeInterval)) s"
                    self.end(why)
                    throw YardError(.unavailable, why)
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
        }

        private func deliver(_ line: String) {
            guard let answer = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)), let id = answer["id"]?.intValue else { return }
            waiting.withLock { $0.answers.removeValue(forKey: id) }?.resume(returning: answer)
        }

        /// Fails every waiting request; later ones fail at once.
        func end(_ why: String) {
            let pending = waiting.withLock { state -> [CheckedContinuation<JSONValue, any Error>] in
                state.ended = state.ended ?? why
                defer { state.answers = [:] }
                return Array(state.answers.values)
            }
            for continuation in pending { continuation.resume(throwing: YardError(.unavailable, why)) }
        }

        /// Ends the process: SIGTERM, or SIGKILL (which also ends a frozen one).
        func stop(kill: Bool = false) {
            end("the study process was stopped")
            if process.isRunning {
                if kill { Glibc.kill(process.processIdentifier, SIGKILL) } else { process.terminate() }
            }
            input.close()
        }
    }
}
