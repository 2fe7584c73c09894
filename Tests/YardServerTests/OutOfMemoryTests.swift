import Foundation
import Testing
import YardDomain
import YardJobs
import YardTestSupport

/// A CUDA out-of-memory failure is retried once with half the batch (issue 32).
@Suite("Out of GPU memory")
struct OutOfMemoryTests {
    /// An engine that runs out of memory at epoch 2 with a batch above
    /// `fits`, as torch reports it, and trains 3 epochs with one that fits.
    static func engine(fits: Int) -> ScriptedEngineRunner {
        ScriptedEngineRunner { request in
            let batch = request.spec["train"]?["batch"]?.intValue ?? OutOfMemory.defaultBatch
            let steps = ScriptedEngineRunner.training(epochs: 3).script(request)
            guard batch > fits else { return steps }
            // Started and epoch 1 (log, started, progress, epoch), then the error at epoch 2.
            return Array(steps.prefix(5)) + [
                .log("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
                .event(EngineEvent(kind: .failed, payload: ["error": "OutOfMemoryError",
                                                            "message": "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"])),
            ]
        }
    }

    @Test func theJobIsRetriedOnceWithHalfTheBatch() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: oom1")))
        let runner = Self.engine(fits: 8)
        try await t.worker(runner).drain()
        let job = try await t.yard.store.require("oom1")
        #expect(job.state == .succeeded, "\(job.message ?? "")")
        #expect(job.attempts == 2, "the retry is a new attempt")
        #expect(runner.requests.all.map { $0.spec["train"]?["batch"]?.intValue } == [nil, 8])
        let retry = try await t.yard.store.events(of: "oom1", after: 0, limit: 1000).first { $0.type == "retry" }
        #expect(retry?.payload["reason"]?.stringValue == "out of GPU memory at batch 16; retrying once with batch 8")
        #expect(retry?.payload["error"]?.stringValue?.contains("CUDA out of memory") == true)
    }

    @Test func aSecondOutOfMemoryFailsNamingTheBatchesTried() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: oom2").replacingOccurrences(of: "imgsz: 32", with: "imgsz: 32, batch: 32")))
        let runner = Self.engine(fits: 4)
        try await t.worker(runner).drain()
        let job = try await t.yard.store.require("oom2")
        #expect(job.state == .failed)
        #expect(job.message?.hasPrefix("out of GPU memory at batch 32 and again at batch 16 after the retry with half") == true, "\(job.message ?? "")")
        #expect(job.message?.contains("CUDA out of memory") == true)
        #expect(runner.requests.all.count == 2)
    }

    @Test func oomRetryFalseFailsAtOnce() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: oom3\noom_retry: false")))
        let runner = Self.engine(fits: 1)
        try await t.worker(runner).drain()
        let job = try await t.yard.store.require("oom3")
        #expect(job.state == .failed)
        #expect(job.message?.hasPrefix("out of GPU memory at batch 16, not retried (oom_retry: false)") == true, "\(job.message ?? "")")
        #expect(job.attempts == 1)
        #expect(runner.requests.all.count == 1)
    }

    /// Another failure is not retried.
    @Test func otherFailuresAreNotRetried() async throws {
        #expect(OutOfMemory.matches("OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB"))
        #expect(OutOfMemory.matches("RuntimeError: CUDA out of memory. Tried to allocate 1 GiB"))
        #expect(!OutOfMemory.matches("RuntimeError: CUDA error: device-side assert triggered"))
        #expect(!OutOfMemory.matches("MemoryError: out of host memory"))
        #expect(OutOfMemory.batch(.int(-1)) == nil)
        #expect(OutOfMemory.batch(.double(0.7)) == nil)
        #expect(OutOfMemory.batch(nil) == 16)
        #expect(OutOfMemory.batch(.int(64), override: .int(4)) == 4)
        #expect(OutOfMemory.retryBatch(tried: [1], allowed: true) == nil)
        #expect(OutOfMemory.retryBatch(tried: [], allowed: true) == nil)
        #expect(OutOfMemory.finalMessage(tried: [], allowed: true, error: "x").contains("automatic batch"))
    }
}
