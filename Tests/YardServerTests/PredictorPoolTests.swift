import Foundation
import Logging
import Synchronization
import Testing
import YardArtifacts
import YardDomain
import YardEngine
import YardServing
import YardStore
import YardTestSupport

/// The predictor pool with a stand-in engine (a small Python script that
/// speaks the serve protocol without torch): what the weights file says
/// makes it answer, hang once, die on a request, or fail to load.
/// A result set once from an unstructured task, polled by the test.
final class Answered: Sendable {
    private let state = Mutex<Int??>(nil)
    private let failure = Mutex("")
    var value: Int?? { state.withLock { $0 } }
    var error: String {
        get { failure.withLock { $0 } }
        set { failure.withLock { $0 = newValue } }
    }
    func set(_ count: Int?) { state.withLock { $0 = .some(count) } }
}

@Suite("Predictor pool")
struct PredictorPoolTests {
    struct Rig {
        let dir: TemporaryDirectory
        let server: ModelServer
        let weights: WeightsCache

        init(processes: Int = 2, memoryLimit: Int64 = 4 << 30, requestTimeout: Duration = .seconds(20), loadTimeout: Duration = .seconds(20),
             batching: Batching? = nil) throws {
            dir = try TemporaryDirectory("pool")
            let python = try dir.write("bin/python", Self.engine(log: dir.file("loads.log"), hangOnce: dir.file("hang-once"), calls: dir.file("calls.log")))
            chmod(python, 0o755)
            let environment = EngineEnvironment(python: python, engineDirectory: dir.file("engine"), ultralyticsDirectory: dir.file("ultralytics"))
            weights = WeightsCache(root: dir.file("models"), artifacts: LocalArtifactStore(root: dir.file("artifacts")), store: MemoryJobStore())
            var options = ServingOptions(cores: 2)
            options.processes = processes
            options.memoryLimit = memoryLimit
            options.requestTimeout = requestTimeout
            options.loadTimeout = loadTimeout
            options.batching = batching
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            server = ModelServer(engine: environment, weights: weights, options: options, logger: logger)
        }

        /// A version whose "weights" are `behaviour` (ok, broken).
        func version(_ number: String, _ behaviour: String) throws -> ModelVersion {
            let sha = String(repeating: number.first!, count: 64).replacingOccurrences(of: "1", with: "a").replacingOccurrences(of: "2", with: "b")
                .replacingOccurrences(of: "3", with: "c")
            let path = weights.path(sha256: sha)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(behaviour.utf8).write(to: URL(fileURLWithPath: path))
            var version = ModelVersion(name: "m", version: number, jobID: "j\(number)", runID: "", source: "", createdAt: Date())
            version.sha256 = sha
            return version
        }

        /// Each engine call: its image count and conf.
        var calls: [(images: Int, conf: Double)] {
            ((try? String(contentsOfFile: dir.file("calls.log"), encoding: .utf8)) ?? "").split(separator: "\n").map {
                let fields = $0.split(separator: " ")
                return (Int(fields[0]) ?? 0, Double(fields[1]) ?? 0)
            }
        }

        var loads: [String] { ((try? String(contentsOfFile: dir.file("loads.log"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }

        /// `python -m trainyard_engine serve --model PATH --threads N`, stood in for.
        static func engine(log: String, hangOnce: String, calls: String) -> String {
            """
            #!/usr/bin/env python3
            import json, os, sys, time
            model = sys.argv[sys.argv.index("--model") + 1]
            kind = open(model).read()
            with open(\(log.debugDescription), "a") as f:
                f.write(f"{kind} {os.getpid()}\\n")
            if kind == "hang-load":
                time.sleep(3600)
            if kind == "slow-load":
                time.sleep(1.5)
            if kind == "broken":
                print("_pickle.UnpicklingError: invalid load key, 'b'.", file=sys.stderr, flush=True)
                sys.exit(1)
            out = sys.stdout
            print(json.dumps({"ready": True, "task": "detect", "names": {"0": "thing"}, "load_ms": 5, "threads": 1, "sample": None}), flush=True)
            source = sys.stdin.buffer
            hoard = []
            while True:
                line = source.readline()
                if not line:
                    sys.exit(0)
                header = json.loads(line)
                blobs = [source.read(n) for n in header["sizes"]]
                with open(\(calls.debugDescription), "a") as f:
                    f.write(f"{len(blobs)} {header['conf']}\\n")
                if any(b[-5] == 0xDD for b in blobs):
                    print(json.dumps({"id": header["id"], "error": "image 2 could not be decoded", "kind": "input"}), flush=True)
                    continue
                if any(b[-5] == 0xEE for b in blobs):
                    print(json.dumps({"id": header["id"], "error": "RuntimeError: CUDA out of memory", "kind": "model"}), flush=True)
                    continue
                if any(b[-5] == 0xBB for b in blobs):
                    os._exit(9)
                if any(b[-5] == 0x99 for b in blobs):
                    # Memory the request leaves behind (written, so resident): 200 MB.
                    hoard.append(bytearray(b"\\x01") * (200 << 20))
                salt = blobs[0][-5]
                if salt == 0xAA and os.path.exists(\(hangOnce.debugDescription)):
                    os.remove(\(hangOnce.debugDescription))
                    time.sleep(3600)
                if salt == 0xCC:
                    print('{"id": 1, "results": [{"score": NaN}]}', flush=True)
                    continue
                results = [{"width": 20, "height": 16, "boxes": [{"class": 0, "name": "thing", "score": 0.5,
                            "xyxy": [1, 2, 3, 4], "xyxyn": [0.05, 0.1, 0.15, 0.25]}], "pid": os.getpid(), "salt": b[-5]} for b in blobs]
                print(json.dumps({"id": header["id"], "results": results, "ms": {"inference": 1}}), flush=True)

            """
        }
    }

    static let image = Data(TestImages.jpeg())

    @Test func fiftyConcurrentRequestsAreAllAnsweredByTheSamePredictors() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        let pids = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    let answer = try await rig.server.predict(version, images: [Self.image], options: PredictOptions())
                    return answer.results.first?["pid"]?.intValue ?? 0
                }
            }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(pids.count == 2, "both predictors answered, and only they: \(pids)")
        #expect(rig.loads.count == 2, "the version was loaded once per process: \(rig.loads)")
        await rig.server.shutdown()
    }

    /// Dynamic batching: concurrent one-image requests reach the predictor
    /// as batches of at most the limit, only with others of the same
    /// options, and each request gets its own image's result.
    @Test func batchingGathersRequestsWithTheSameOptionsAndSplitsTheAnswers() async throws {
        let rig = try Rig(processes: 1, batching: Batching(maxImages: 4, maxWait: .milliseconds(300)))
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        _ = try await rig.server.predict(version, images: [Self.image], options: PredictOptions())  // loaded first
        let mismatched = try await withThrowingTaskGroup(of: Bool.self) { group in
            for salt in UInt8(1)...UInt8(12) {
                group.addTask {
                    var options = PredictOptions()
                    options.conf = salt % 3 == 0 ? 0.5 : 0.25
                    let answer = try await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: salt))], options: options)
                    return answer.results.count != 1 || answer.results[0]["salt"]?.intValue != Int(salt)
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(mismatched == 0, "every request got its own image's result")
        let calls = rig.calls.dropFirst()
        #expect(calls.reduce(0) { $0 + $1.images } == 12)
        #expect(calls.allSatisfy { $0.images <= 4 }, "no batch over the limit: \(calls)")
        #expect(calls.count < 12, "requests were batched: \(calls)")
        // 4 requests had conf 0.5, 8 had 0.25: batches never mix them.
        #expect(calls.filter { $0.conf == 0.5 }.reduce(0) { $0 + $1.images } == 4)
        let sizes = await rig.server.loaded().first?["batch_sizes"]?.objectValue ?? [:]
        #expect(sizes.values.compactMap(\.intValue).reduce(0, +) == calls.count + 1, "/api/serving counts every call: \(sizes)")
        await rig.server.shutdown()
    }

    /// One unreadable image in a batch fails its own request only: the
    /// batch is tried again request by request.
    @Test func aBadImageInABatchFailsOnlyItsRequest() async throws {
        let rig = try Rig(processes: 1, batching: Batching(maxImages: 8, maxWait: .milliseconds(300)))
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        let outcomes = await withTaskGroup(of: (UInt8, Bool).self) { group in
            for salt: UInt8 in [1, 2, 0xDD, 4] {
                group.addTask {
                    let answer = try? await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: salt))], options: PredictOptions())
                    return (salt, answer?.results.first?["salt"]?.intValue == Int(salt))
                }
            }
            return await group.reduce(into: [UInt8: Bool]()) { $0[$1.0] = $1.1 }
        }
        #expect(outcomes == [1: true, 2: true, 0xDD: false, 4: true])
        #expect(rig.calls.contains { $0.images > 1 }, "they were sent as a batch first: \(rig.calls)")
        await rig.server.shutdown()
    }

    /// A request given up (its client gone) while its predictor hangs: the
    /// predictor is still killed at the request timeout and replaced, so
    /// the next request is answered instead of waiting for ever.
    @Test func aCancelledRequestOnAHungPredictorDoesNotHoldItsSlot() async throws {
        let rig = try Rig(processes: 1, requestTimeout: .seconds(1))
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        _ = try await rig.server.predict(version, images: [Self.image], options: PredictOptions())
        _ = try rig.dir.write("hang-once", "")
        let hung = Task { try await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: 0xAA))], options: PredictOptions()) }
        try await eventually("the hanging request reached its predictor", timeout: .seconds(10)) { !FileManager.default.fileExists(atPath: rig.dir.file("hang-once")) }
        hung.cancel()
        let results = Answered()
        Task {
            do { results.set(try await rig.server.predict(version, images: [Self.image], options: PredictOptions()).results.count) } catch {
                results.set(nil)
                results.error = "\(error)"
            }
        }
        // Polled, not awaited: before the fix this request waited for ever.
        try await eventually("the next request is answered", timeout: .seconds(15)) { results.value != nil }
        #expect(results.value == 1, "\(results.error)")
        await rig.server.shutdown()
    }

    /// An image that kills the predictor takes only its own request down:
    /// the batch it was in goes again request by request.
    @Test func anImageThatKillsThePredictorFailsOnlyItsRequestInABatch() async throws {
        let rig = try Rig(processes: 2, batching: Batching(maxImages: 8, maxWait: .milliseconds(300)))
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        _ = try await rig.server.predict(version, images: [Self.image], options: PredictOptions())
        let outcomes = await withTaskGroup(of: (UInt8, Bool).self) { group in
            for salt: UInt8 in [1, 0xBB, 3, 4] {
                group.addTask {
                    let answer = try? await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: salt))], options: PredictOptions())
                    return (salt, answer?.results.first?["salt"]?.intValue == Int(salt))
                }
            }
            return await group.reduce(into: [UInt8: Bool]()) { $0[$1.0] = $1.1 }
        }
        #expect(outcomes == [1: true, 0xBB: false, 3: true, 4: true])
        await rig.server.shutdown()
    }

    /// The model failing (out of memory, a runtime error) is the server's
    /// fault: a 503 the client may retry, not a 400 about its image.
    @Test func aModelFailureIsUnavailableNotBadInput() async throws {
        let rig = try Rig(processes: 1)
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        await #expect {
            try await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: 0xEE))], options: PredictOptions())
        } throws: { error in
            (error as? YardError)?.code == .unavailable && "\(error)".contains("CUDA out of memory")
        }
        await #expect {
            try await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: 0xDD))], options: PredictOptions())
        } throws: { error in
            (error as? YardError)?.code == .invalidInput
        }
        await rig.server.shutdown()
    }

    /// A predictor that stops answering is killed after the request timeout
    /// and replaced; the request is retried once and answered.
    @Test func aHungPredictorIsReplacedAndItsRequestRetried() async throws {
        let rig = try Rig(processes: 1, requestTimeout: .seconds(1))
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        _ = try rig.dir.write("hang-once", "")
        let answer = try await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: 0xAA))], options: PredictOptions())
        #expect(answer.results.count == 1)
        #expect(rig.loads.count == 2, "a new predictor took the hung one's place")
        let loaded = await rig.server.loaded()
        #expect(loaded.first?["restarts"] == .int(1))
        await rig.server.shutdown()
    }

    /// A request that kills every predictor it reaches is tried twice, then
    /// refused with a 503; the pool serves the next request.
    @Test func aRequestThatKillsItsPredictorIsRetriedOnceThenRefused() async throws {
        let rig = try Rig(processes: 2)
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        await #expect {
            try await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: 0xBB))], options: PredictOptions())
        } throws: { error in
            let yard = error as? YardError
            return yard?.code == .unavailable && yard?.message.contains("failed twice") == true
        }
        let next = try await rig.server.predict(version, images: [Self.image], options: PredictOptions())
        #expect(next.results.count == 1)
        await rig.server.shutdown()
    }

    /// Weights that are not a model: the load fails with the engine's own
    /// words and nothing is kept; requests in the next seconds get the same
    /// answer without starting processes; a health check tries again.
    @Test func aVersionThatCannotLoadSaysWhyAndIsNotKept() async throws {
        let rig = try Rig(processes: 1)
        defer { rig.dir.remove() }
        let version = try rig.version("2", "broken")
        for _ in 0..<5 {
            await #expect {
                try await rig.server.predict(version, images: [Self.image], options: PredictOptions())
            } throws: { error in
                "\(error)".contains("UnpicklingError")
            }
        }
        #expect(rig.loads.count == 1, "one load for five requests: \(rig.loads)")
        #expect(await rig.server.loaded().isEmpty)
        let check = await rig.server.healthCheck(version)
        #expect(!check.ok && check.reason?.contains("UnpicklingError") == true)
        #expect(rig.loads.count == 2)
    }

    /// A predictor that never says it loaded is killed at the load timeout:
    /// the load fails then, and other versions and the server's reports are
    /// not held up meanwhile.
    @Test func aLoadThatHangsIsKilledAtTheTimeout() async throws {
        // 3 s: the stand-in that does load must, on a machine busy with the other suites.
        let rig = try Rig(processes: 2, loadTimeout: .seconds(3))
        defer { rig.dir.remove() }
        let hanging = try rig.version("2", "hang-load"), fine = try rig.version("1", "ok")
        let clock = ContinuousClock()
        let started = clock.now
        let stuck = Task { _ = try await rig.server.predict(hanging, images: [Self.image], options: PredictOptions()) }
        let answer = try await rig.server.predict(fine, images: [Self.image], options: PredictOptions())
        #expect(answer.results.count == 1)
        await #expect(throws: YardError.self) { try await stuck.value }
        #expect(clock.now - started < .seconds(10), "the timeout ended the load")
        #expect(rig.loads.filter { $0.hasPrefix("hang-load") }.count == 2)
        try await eventually("the hung processes to be gone", timeout: .seconds(5)) {
            rig.loads.filter { $0.hasPrefix("hang-load") }.allSatisfy { kill(Int32($0.split(separator: " ")[1])!, 0) != 0 }
        }
        await rig.server.shutdown()
    }

    /// An answer JSON cannot carry (NaN from a diverged model) fails its
    /// request at once; the predictor is not killed.
    @Test func anUnreadableAnswerFailsItsRequestNotThePredictor() async throws {
        let rig = try Rig(processes: 1)
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        await #expect {
            try await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: 0xCC))], options: PredictOptions())
        } throws: { error in
            (error as? YardError)?.code == .invalidInput && "\(error)".contains("not JSON")
        }
        let next = try await rig.server.predict(version, images: [Self.image], options: PredictOptions())
        #expect(next.results.count == 1)
        #expect(await rig.server.loaded().first?["restarts"] == .int(0))
        await rig.server.shutdown()
    }

    /// Past the memory limit the least recently used idle version is
    /// unloaded (its processes end); the one just loaded stays.
    @Test func theLeastRecentlyUsedVersionIsUnloadedPastTheMemoryLimit() async throws {
        let rig = try Rig(processes: 1, memoryLimit: 1)
        defer { rig.dir.remove() }
        let first = try rig.version("1", "ok"), second = try rig.version("3", "ok")
        let a = try await rig.server.predict(first, images: [Self.image], options: PredictOptions())
        let firstPID = try #require(a.results.first?["pid"]?.intValue)
        _ = try await rig.server.predict(second, images: [Self.image], options: PredictOptions())
        let loaded = await rig.server.loaded()
        #expect(loaded.map { $0["sha256"]?.stringValue } == [second.sha256])
        try await eventually("the unloaded version's process to end", timeout: .seconds(5)) { kill(Int32(firstPID), 0) != 0 }
        await rig.server.shutdown()
    }

    /// Images over the request's pixel budget (16 photos of 12 MP: 192 MP,
    /// about 576 MB once decoded) are refused with a 413 naming the limit
    /// from their headers alone: no predictor starts, none decodes them.
    @Test func imagesOverThePixelBudgetAreRefusedBeforeAnyPredictorStarts() async throws {
        let rig = try Rig(processes: 1)
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        let photos = (0..<16).map { Data(TestImages.jpeg(width: 4000, height: 3000, salt: UInt8($0))) }
        await #expect {
            try await rig.server.predict(version, images: photos, options: PredictOptions())
        } throws: { error in
            let yard = error as? YardError
            return yard?.code == .tooLarge && yard?.message.contains("at most 64 megapixels") == true && yard?.message.contains("192 megapixels") == true
        }
        #expect(rig.loads.isEmpty, "no predictor was started for it: \(rig.loads)")
        // One photo at the largest side allowed (8000x8000) is within the budget.
        let one = try await rig.server.predict(version, images: [Data(TestImages.jpeg(width: 8000, height: 8000))], options: PredictOptions())
        #expect(one.results.count == 1)
        await rig.server.shutdown()
    }

    /// A predictor killed (kill -9) while its model loads is started again
    /// at once: the load does not fail, the other predictor serves, and
    /// requests wait for it instead of failing. 10 clients ask throughout.
    @Test func aPredictorKilledWhileItLoadsIsStartedAgainAndRequestsDoNotFail() async throws {
        let rig = try Rig(processes: 2)
        defer { rig.dir.remove() }
        let version = try rig.version("1", "slow-load")
        let tally = Tally()
        let clients = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        while !tally.stopped {
                            do {
                                _ = try await rig.server.predict(version, images: [Self.image], options: PredictOptions())
                                tally.add(ok: true)
                            } catch {
                                tally.add(ok: false, "\(error)")
                                try? await Task.sleep(for: .milliseconds(20))  // a failure comes at once: do not spin
                            }
                        }
                    }
                }
            }
        }
        try await eventually("both predictors to start loading", timeout: .seconds(10)) { rig.loads.count >= 2 }
        try await Task.sleep(for: .milliseconds(500))  // a second into its 1.5 s load
        let victim = try #require(Int32(rig.loads[0].split(separator: " ")[1]))
        #expect(kill(victim, SIGKILL) == 0)
        try await eventually("a predictor to start in the killed one's place", timeout: .seconds(10)) { rig.loads.count >= 3 }
        try await eventually("both predictors to serve", timeout: .seconds(10)) {
            await rig.server.loaded().first?["pids"]?.arrayValue?.count == 2
        }
        try await Task.sleep(for: .seconds(1))
        tally.stop()
        await clients.value
        let (ok, failed, errors) = tally.counts
        #expect(ok > 0 && failed * 100 < ok + failed, "\(failed) of \(ok + failed) requests failed: \(errors.prefix(3))")
        #expect(rig.loads.count == 3, "one start again, not a reload of the version: \(rig.loads)")
        await rig.server.shutdown()
    }

    /// A predictor whose memory stays over its share of the memory limit
    /// after a request (here 200 MB against 128 MB) is replaced by a fresh
    /// one; the request itself is answered, and a predictor within its
    /// share is kept.
    @Test func aPredictorOverItsMemoryShareAfterARequestIsRecycled() async throws {
        let rig = try Rig(processes: 1, memoryLimit: 128 << 20)
        defer { rig.dir.remove() }
        let version = try rig.version("1", "ok")
        let first = try #require(try await rig.server.predict(version, images: [Self.image], options: PredictOptions()).results.first?["pid"]?.intValue)
        let again = try await rig.server.predict(version, images: [Self.image], options: PredictOptions())
        #expect(again.results.first?["pid"]?.intValue == first, "within its share: kept")
        let heavy = try await rig.server.predict(version, images: [Data(TestImages.jpeg(salt: 0x99))], options: PredictOptions())
        #expect(heavy.results.first?["pid"]?.intValue == first, "the request that grew it is answered")
        try await eventually("the grown predictor to end", timeout: .seconds(10)) { kill(Int32(first), 0) != 0 }
        let next = try await rig.server.predict(version, images: [Self.image], options: PredictOptions())
        let second = try #require(next.results.first?["pid"]?.intValue)
        #expect(second != first)
        #expect(rig.loads.count == 2, "\(rig.loads)")
        let loaded = await rig.server.loaded()
        #expect((loaded.first?["memory_bytes"]?.intValue ?? .max) < 128 << 20, "\(loaded)")
        #expect(loaded.first?["recycled"] == .int(1), "\(loaded)")
        await rig.server.shutdown()
    }
}

/// Requests answered and failed, counted from many tasks.
final class Tally: Sendable {
    private let state = Mutex((ok: 0, failed: 0, errors: [String](), stopped: false))
    var stopped: Bool { state.withLock { $0.stopped } }
    var counts: (Int, Int, [String]) { state.withLock { ($0.ok, $0.failed, $0.errors) } }
    func stop() { state.withLock { $0.stopped = true } }
    func add(ok: Bool, _ error: String = "") {
        state.withLock {
            if ok { $0.ok += 1 } else {
                $0.failed += 1
                if $0.errors.count < 10 { $0.errors.append(error) }
            }
        }
    }
}
