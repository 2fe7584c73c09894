import Foundation
import Hummingbird
import Synchronization
import YardArtifacts
import YardDomain
import YardEngine
import YardRedis
import YardStore

/// `GET /ready`: whether this server can do its work now, for a load
/// balancer or an orchestrator's readiness probe (`/health` stays liveness:
/// the process answers). Each part is asked at once, each with its own
/// deadline, so a part that hangs makes the answer "not ready, naming it"
/// after `deadline`, never a probe that hangs too:
/// - `store`: a read of the database;
/// - `queue`: Redis answers PING (with workers elsewhere); the embedded
///   queue lives in the store;
/// - `engine`: the engine's Python is an executable file and its scripts
///   are there (it is not started: that is `yard doctor`);
/// - `artifacts`: the artifact folder can be written.
/// 200 with every part's answer and time, or 503 with `failing` naming the
/// first that did not answer and why. Nothing in it is a secret.
struct Readiness: Sendable {
    struct Part: Sendable {
        var name: String
        var check: @Sendable () async throws -> String
    }

    let parts: [Part]
    var deadline: Duration = .seconds(2)

    init(store: any JobStore, remote: RemoteWorkers?, engine: EngineEnvironment, artifacts: any ArtifactStore, deadline: Duration = .seconds(2)) {
        self.deadline = deadline
        var parts = [Part(name: "store") {
            _ = try await store.eventFloor()
            return "answers"
        }]
        if let redis = remote?.redis {
            let timeout = deadline
            parts.append(Part(name: "queue") {
                let reply = try await redis.send(["PING"], timeout: timeout)
                guard case .simpleString(let text) = reply, text == "PONG" else { throw YardError(.unavailable, "Redis answered PING with \(reply)") }
                return "Redis answers"
            })
        } else {
            parts.append(Part(name: "queue") { "embedded (in the store)" })
        }
        parts.append(Part(name: "engine") {
            guard FileManager.default.isExecutableFile(atPath: engine.python) else {
                throw YardError(.unavailable, "\(engine.python) is not an executable Python; set --python or run scripts/setup.sh")
            }
            guard FileManager.default.fileExists(atPath: engine.engineDirectory + "/trainyard_engine/__main__.py") else {
                throw YardError(.unavailable, "the engine's scripts are not in \(engine.engineDirectory)")
            }
            return engine.python
        })
        if let local = artifacts as? LocalArtifactStore {
            parts.append(Part(name: "artifacts") {
                var folder = local.root
                // The folder is made with the first artifact: until then its nearest existing parent must be writable.
                while !FileManager.default.fileExists(atPath: folder), folder != "/" { folder = (folder as NSString).deletingLastPathComponent }
                guard access(folder, W_OK) == 0 else { throw YardError(.unavailable, "\(local.root) cannot be written") }
                return "writable"
            })
        }
        self.parts = parts
    }

    init(parts: [Part], deadline: Duration) {
        self.parts = parts
        self.deadline = deadline
    }

    struct Answer: Sendable {
        var name: String
        var ok: Bool
        var detail: String
        var milliseconds: Double
    }

    /// Every part's answer, in order; each within `deadline`.
    func check() async -> [Answer] {
        await withTaskGroup(of: (Int, Answer).self) { group in
            for (index, part) in parts.enumerated() {
                group.addTask { (index, await Self.answer(part, within: deadline)) }
            }
            var answers = [Answer?](repeating: nil, count: parts.count)
            for await (index, answer) in group { answers[index] = answer }
            return answers.compactMap { $0 }
        }
    }

    /// The part's answer, or "no answer in N s" once the deadline passes
    /// (the check itself runs on and is dropped: a hung call must not hold the probe).
    static func answer(_ part: Part, within deadline: Duration) async -> Answer {
        let clock = ContinuousClock()
        let start = clock.now
        let result: Result<String, any Error>? = await withCheckedContinuation { continuation in
            let once = Mutex(Optional(continuation))
            let resume: @Sendable (Result<String, any Error>?) -> Void = { value in
                once.withLock { held in
                    held?.resume(returning: value)
                    held = nil
                }
            }
            Task {
                do { resume(.success(try await part.check())) } catch { resume(.failure(error)) }
            }
            Task {
                try? await Task.sleep(for: deadline)
                resume(nil)
            }
        }
        let milliseconds = Double((clock.now - start).components.attoseconds) / 1e15 + Double((clock.now - start).components.seconds) * 1000
        switch result {
        case .success(let detail): return Answer(name: part.name, ok: true, detail: detail, milliseconds: milliseconds)
        case .failure(let error):
            let text = (error as? YardError)?.message ?? "\(error)"
            return Answer(name: part.name, ok: false, detail: String(text.split(separator: "\n").first ?? "failed"), milliseconds: milliseconds)
        case nil:
            let seconds = Double(deadline.components.seconds) + Double(deadline.components.attoseconds) / 1e18
            return Answer(name: part.name, ok: false, detail: "no answer in \(seconds.formatted(.number.precision(.fractionLength(0...1)))) s",
                          milliseconds: milliseconds)
        }
    }

    func response() async throws -> Response {
        let answers = await check()
        var body: [String: JSONValue] = [
            "status": .string(answers.allSatisfy(\.ok) ? "ready" : "not ready"),
            "checks": .object(Dictionary(uniqueKeysWithValues: answers.map { answer in
                (answer.name, JSONValue.object(["ok": .bool(answer.ok), "detail": .string(answer.detail),
                                                 "ms": .double((answer.milliseconds * 10).rounded() / 10)]))
            })),
        ]
        if let failing = answers.first(where: { !$0.ok }) {
            body["failing"] = .string(failing.name)
            body["message"] = .string("\(failing.name): \(failing.detail)")
            return try JSONResponse.make(JSONValue.object(body), status: .serviceUnavailable)
        }
        return try JSONResponse.make(JSONValue.object(body))
    }
}
