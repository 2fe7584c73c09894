import Foundation
import Synchronization
import YardDomain
import YardEngine

/// An engine that replays a script of outputs instead of training, for fast
/// worker and API tests. A stop request ends the script with a `stopped`
/// event, as the real engine does after saving a checkpoint.
public struct ScriptedEngineRunner: EngineRunner {
    public var script: @Sendable (EngineRequest) -> [EngineOutput]
    public var exitCode: Int32
    public var stepDelay: Duration
    /// An engine stuck in a step: it hears a stop request and goes on (only a kill ends it).
    public var ignoresStop = false
    public let requests = RequestLog()
    /// How engines were asked to stop, in order: "stop" (a checkpoint) or "abandon" (a pruned trial).
    public let stops = StopLog()

    public init(exitCode: Int32 = 0, stepDelay: Duration = .milliseconds(5),
                script: @escaping @Sendable (EngineRequest) -> [EngineOutput]) {
        self.script = script
        self.exitCode = exitCode
        self.stepDelay = stepDelay
    }

    public func start(_ request: EngineRequest) async throws -> any EngineProcess {
        requests.append(request)
        return ScriptedProcess(steps: script(request), exitCode: exitCode, stepDelay: stepDelay, ignoresStop: ignoresStop, stops: stops)
    }

    /// A successful training of `epochs` epochs.
    public static func training(epochs: Int, stepDelay: Duration = .milliseconds(5)) -> ScriptedEngineRunner {
        ScriptedEngineRunner(stepDelay: stepDelay) { request in
            let start = request.spec["resume"] == nil ? 0 : 1
            let run = "\(request.spec["project"]?.stringValue ?? "/runs")/\(request.spec["name"]?.stringValue ?? "x")"
            var steps: [EngineOutput] = [
                .log("Ultralytics (scripted)"),
                .event(EngineEvent(kind: .started, payload: ["device": "cpu", "epochs": .int(epochs), "start_epoch": .int(start),
                                                             "save_dir": .string(run), "versions": ["ultralytics": "test"]])),
            ]
            for epoch in (start + 1)...epochs {
                steps.append(.event(EngineEvent(kind: .progress, payload: ["epoch": .int(epoch), "epochs": .int(epochs), "batch": 1, "batches": 1])))
                steps.append(.event(EngineEvent(kind: .epoch, payload: [
                    "epoch": .int(epoch), "epochs": .int(epochs), "seconds": 0.5,
                    "metrics": ["metrics/mAP50(B)": .double(0.1 * Double(epoch))], "losses": ["train/box_loss": .double(2.0 / Double(epoch))],
                ])))
                steps.append(.log("epoch \(epoch) done"))
            }
            steps.append(.event(EngineEvent(kind: .finished, payload: ["best": .string(run + "/weights/best.pt"), "metrics": ["metrics/mAP50(B)": 0.3], "fitness": 0.3])))
            return steps
        }
    }

    public final class StopLog: Sendable {
        private let items = Mutex<[String]>([])
        func append(_ kind: String) { items.withLock { $0.append(kind) } }
        public var all: [String] { items.withLock { $0 } }
    }

    public final class RequestLog: Sendable {
        private let items = Mutex<[EngineRequest]>([])
        func append(_ r: EngineRequest) { items.withLock { $0.append(r) } }
        public var all: [EngineRequest] { items.withLock { $0 } }
    }
}

final class ScriptedProcess: EngineProcess, Sendable {
    private struct State {
        var stopRequested = false
        var killed = false
        var index = 0
        var done = false
    }

    private let state = Mutex(State())
    private let steps: [EngineOutput]
    private let exitCode: Int32
    private let ignoresStop: Bool
    private let stops: ScriptedEngineRunner.StopLog
    let output: AsyncStream<EngineOutput>

    init(steps: [EngineOutput], exitCode: Int32, stepDelay: Duration, ignoresStop: Bool, stops: ScriptedEngineRunner.StopLog) {
        self.stops = stops
        self.steps = steps
        self.exitCode = exitCode
        self.ignoresStop = ignoresStop
        var next: (@Sendable () async -> EngineOutput?)!
        output = AsyncStream(unfolding: { await next() })
        next = { [unowned self] in
            try? await Task.sleep(for: stepDelay)
            return self.nextStep()
        }
    }

    private func nextStep() -> EngineOutput? {
        state.withLock { state in
            if state.done || state.killed { return nil }
            if state.stopRequested && !ignoresStop {
                state.done = true
                return .event(EngineEvent(kind: .stopped, payload: ["last": "/runs/x/weights/last.pt", "epoch": 1]))
            }
            guard state.index < steps.count else { state.done = true; return nil }
            defer { state.index += 1 }
            return steps[state.index]
        }
    }

    func requestStop() {
        stops.append("stop")
        state.withLock { $0.stopRequested = true }
    }

    func abandon() {
        stops.append("abandon")
        state.withLock { $0.stopRequested = true }
    }
    func kill() { state.withLock { $0.killed = true } }
    func waitForExit() async -> Int32 { state.withLock { $0.killed } ? 137 : exitCode }
}
