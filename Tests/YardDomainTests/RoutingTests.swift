import Foundation
import Testing
import YardDomain

/// `resources:` in a job config, worker tags and which worker may take
/// which job (issue 32, routing); the drivers' use of it is in
/// QueueSchedulingTests and RedisJobQueueTests.
@Suite("Routing: job resources and worker tags")
struct RoutingTests {
    static let parser = JobConfigParser(baseDirectory: "/cfg") { $0 == "/cfg/data.yaml" }

    static func config(_ resources: String) -> String {
        "model: yolov8n.yaml\ntrain: {data: data.yaml}\nresources: \(resources)\n"
    }

    /// The one-line error the parser gives for `resources: TEXT`.
    static func error(_ resources: String) -> YardError? {
        do {
            _ = try parser.parse(config(resources))
            return nil
        } catch {
            return error
        }
    }

    @Test func aConfigAsksForTagsAndGPUMemory() throws {
        let config = try Self.parser.parse(Self.config("{tags: [A100, 80gb, a100], gpu_memory_gb: 40}"))
        #expect(config.resources == JobResources(tags: ["80gb", "a100"], gpuMemoryGB: 40))
        #expect(try Self.parser.parse(Self.config("{tags: a100}")).resources.tags == ["a100"], "one tag may be bare")
        #expect(try Self.parser.parse(Self.config("{gpu_memory_gb: 12.5}")).resources.gpuMemoryGB == 12.5)
        #expect(try Self.parser.parse(Self.config("{}")).resources == .none)
        #expect(try Self.parser.parse("model: yolov8n.yaml\ntrain: {data: data.yaml}\n").resources == .none)
    }

    @Test(arguments: [
        ("[a100]", "resources", "must be a mapping"),
        ("{tag: [a100]}", "resources.tag", "unknown key; allowed keys are tags, gpu_memory_gb"),
        ("{tags: [a100, 3]}", "resources.tags", "must be a list of tags"),
        ("{tags: [\"a 100\"]}", "resources.tags", "\"a 100\" is not a tag"),
        ("{tags: [\"-x\"]}", "resources.tags", "is not a tag"),
        ("{tags: [{a: 1}]}", "resources.tags", "got a mapping in it"),
        ("{gpu_memory_gb: 0}", "resources.gpu_memory_gb", "above 0"),
        ("{gpu_memory_gb: -4}", "resources.gpu_memory_gb", "got -4"),
        ("{gpu_memory_gb: forty}", "resources.gpu_memory_gb", "got \"forty\""),
        ("{gpu_memory_gb: 40000}", "resources.gpu_memory_gb", "at most 4096"),
        ("{gpu_memory_gb: .nan}", "resources.gpu_memory_gb", "must be a number"),
    ])
    func badResourcesAreOneLineErrorsNamingTheField(resources: String, field: String, says: String) throws {
        let error = try #require(Self.error(resources))
        #expect(error.field == field)
        #expect(error.message.hasPrefix(field + ": "), "\(error.message)")
        #expect(error.message.contains(says), "\(error.message)")
        #expect(!error.message.contains("\n"))
    }

    @Test func tooManyTagsAreRefused() throws {
        let tags = (0...32).map { "t\($0)" }.joined(separator: ", ")
        let error = try #require(Self.error("{tags: [\(tags)]}"))
        #expect(error.message == "resources.tags: at most 32 tags, got 33")
    }

    @Test func workerTagsParseFromAFlag() throws {
        #expect(try WorkerTags.parse("A100, 80gb,,a100") == ["80gb", "a100"])
        #expect(try WorkerTags.parse("") == [])
        #expect(throws: YardError.self) { try WorkerTags.parse("a100,80 gb") }
        do {
            _ = try WorkerTags.parse("a100;rm", field: "--worker-tags")
            Issue.record("accepted a tag with ';'")
        } catch {
            #expect(error.message.hasPrefix("--worker-tags: \"a100;rm\" is not a tag"))
        }
    }

    @Test func aWorkerFitsWhenItHasEveryTagAndTheMemory() {
        let job = JobResources(tags: ["a100"], gpuMemoryGB: 40)
        #expect(Routing.fits(job, on: WorkerCapacity(tags: ["a100", "80gb"], freeGPUMemoryGB: 80)))
        #expect(Routing.fits(job, on: WorkerCapacity(tags: ["A100"], freeGPUMemoryGB: 40)), "tags compare case-insensitively; exactly enough is enough")
        #expect(!Routing.fits(job, on: WorkerCapacity(tags: ["a100"], freeGPUMemoryGB: 39.9)))
        #expect(!Routing.fits(job, on: WorkerCapacity(tags: ["v100"], freeGPUMemoryGB: 80)))
        #expect(!Routing.fits(job, on: WorkerCapacity(tags: ["a100"], freeGPUMemoryGB: nil)), "no GPU stats: no job that asks for GPU memory")
        #expect(Routing.fits(JobResources(tags: ["a100"]), on: WorkerCapacity(tags: ["a100"])))
        #expect(Routing.fits(.none, on: .plain))
        #expect(!Routing.fits(JobResources(tags: ["a100"]), on: .plain))
    }

    /// nvidia-smi's MiB become GB of 10^9 bytes; the freest GPU counts; a
    /// busy worker's whole memory counts for the waiting reason.
    @Test func capacityFromGPUStats() {
        let gpus = [GPUStats(index: 0, name: "A100", memoryTotalMiB: 81920, memoryUsedMiB: 61920),
                    GPUStats(index: 1, name: "A100", memoryTotalMiB: 40960, memoryUsedMiB: 960),
                    GPUStats(index: 2, name: "odd", memoryTotalMiB: nil, memoryUsedMiB: 5)]
        let idle = WorkerCapacity(tags: [], gpus: gpus)
        #expect(abs((idle.freeGPUMemoryGB ?? 0) - 40000 * 0.001048576) < 0.001)
        let busy = WorkerCapacity(tags: [], gpus: gpus, whole: true)
        #expect(abs((busy.freeGPUMemoryGB ?? 0) - 81920 * 0.001048576) < 0.001)
        #expect(WorkerCapacity(tags: [], gpus: []).freeGPUMemoryGB == nil)
        #expect(WorkerCapacity(tags: [], gpus: [GPUStats(index: 0, name: "x", memoryTotalMiB: 100)]).freeGPUMemoryGB == nil,
                "no used figure: no free figure")
    }

    @Test func aJobNoLiveWorkerCanTakeSaysWhy() {
        let workers = [WorkerCapacity(tags: ["a100"], freeGPUMemoryGB: 30), WorkerCapacity(tags: ["v100"], freeGPUMemoryGB: 90)]
        #expect(Routing.unroutable(JobResources(tags: ["h100"]), workers: workers) == "waiting: no worker has tags h100")
        #expect(Routing.unroutable(JobResources(tags: ["a100", "v100"]), workers: workers) == "waiting: no worker has tags a100, v100")
        #expect(Routing.unroutable(JobResources(gpuMemoryGB: 100), workers: workers) == "waiting: no worker has 100 GB of free GPU memory")
        #expect(Routing.unroutable(JobResources(tags: ["a100"], gpuMemoryGB: 40), workers: workers)
                == "waiting: no worker with tags a100 has 40 GB of free GPU memory", "the v100 has the memory but not the tag")
        #expect(Routing.unroutable(JobResources(gpuMemoryGB: 12.5), workers: [.plain]) == "waiting: no worker has 12.5 GB of free GPU memory")
        #expect(Routing.unroutable(JobResources(tags: ["v100"], gpuMemoryGB: 80), workers: workers) == nil)
        #expect(Routing.unroutable(.none, workers: []) == nil, "a job that asks for nothing waits for any worker")
        #expect(Routing.unroutable(JobResources(tags: ["a100"]), workers: []) == "waiting: no worker has tags a100")
    }

    /// The claim order skips what the worker cannot take and still ranks
    /// the rest: a priority 9 job for an A100 does not hold back a CPU worker.
    @Test func theClaimOrderSkipsJobsTheWorkerCannotTake() {
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let waiting = [
            ClaimOrder.Candidate(ticket: QueueTicket(jobID: "big", priority: 9, enqueuedAt: t0, resources: JobResources(tags: ["a100"], gpuMemoryGB: 40)), seq: 1),
            ClaimOrder.Candidate(ticket: QueueTicket(jobID: "plain", enqueuedAt: t0), seq: 2),
            ClaimOrder.Candidate(ticket: QueueTicket(jobID: "tagged", priority: 7, enqueuedAt: t0, resources: JobResources(tags: ["a100"])), seq: 3),
        ]
        func next(_ capacity: WorkerCapacity) -> String? {
            ClaimOrder.next(waiting, usage: [:], now: t0, policy: .default, capacity: capacity).map { waiting[$0].ticket.jobID }
        }
        #expect(next(.plain) == "plain")
        #expect(next(WorkerCapacity(tags: ["a100"], freeGPUMemoryGB: 20)) == "tagged")
        #expect(next(WorkerCapacity(tags: ["a100"], freeGPUMemoryGB: 80)) == "big")
        #expect(ClaimOrder.next(Array(waiting.prefix(1)), usage: [:], now: t0, policy: .default) == nil)
    }

    /// A ticket made from a stored job carries its config's resources.
    @Test func aTicketCarriesItsJobsResources() {
        let config: JSONValue = .object(["model": .string("m"), "resources": .object(["tags": .array([.string("a100")]), "gpu_memory_gb": .int(40)])])
        #expect(JobResources(config: config) == JobResources(tags: ["a100"], gpuMemoryGB: 40))
        #expect(JobResources(config: .object(["resources": .string("junk")])) == .none)
    }
}
