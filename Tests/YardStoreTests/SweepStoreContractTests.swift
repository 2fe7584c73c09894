import Foundation
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// `SweepStore`: the same expectations for every driver.
@Suite("SweepStore contract")
struct SweepStoreContractTests {
    typealias Driver = JobStoreContractTests.Driver

    @Test(arguments: Driver.allCases)
    func sweepsAreStoredListedAndUpdatedWithTheirSecretsApart(driver: Driver) async throws {
        let store: any SweepStore = try JobStoreContractTests.make(driver)
        let config = try JobStoreContractTests.job("base").config
        var first = Sweep(id: "sw1", study: "lr-study", experiment: "e", config: config, createdAt: Date(timeIntervalSince1970: 10))
        first.trials = [Sweep.Trial(number: 0, jobID: Sweep.trialJobID(sweep: "sw1", number: 0), params: ["train.lr0": 0.01])]
        try await store.insertSweep(first, secrets: ["minio\u{1F}MINIO_SECRET_KEY": "s"])
        try await store.insertSweep(Sweep(id: "sw2", study: "other", experiment: "e", config: .object([:]), createdAt: Date(timeIntervalSince1970: 20)), secrets: [:])
        await #expect(throws: YardError.self) {
            try await store.insertSweep(Sweep(id: "SW1", study: "x", experiment: "e", config: .object([:]), createdAt: Date()), secrets: [:])
        }
        #expect(try await store.sweep("sw1") == first)
        #expect(try await store.sweep("nope") == nil)
        #expect(try await store.sweepSecrets(of: "sw1") == ["minio\u{1F}MINIO_SECRET_KEY": "s"])
        #expect(try await store.sweep("sw1")?.config["minio"]?["MINIO_SECRET_KEY"] == "***")
        #expect(try await store.sweeps(limit: 10, active: false).map(\.id) == ["sw2", "sw1"])
        let done = try await store.updateSweep("sw2") { sweep in
            sweep.state = .finished
            sweep.best = Sweep.Best(number: 3, jobID: "sw2-t3", value: 0.7, params: ["model": "yolov8s.yaml"])
        }
        #expect(done.best?.value == 0.7)
        #expect(try await store.sweeps(limit: 10, active: true).map(\.id) == ["sw1"], "ended sweeps are not active")
        #expect(try await store.sweeps(limit: 1, active: false).map(\.id) == ["sw2"])
        await #expect(throws: YardError.self) { try await store.updateSweep("nope") { _ in } }
        #expect(Sweep.trialJobID(sweep: "sw1", number: 12) == "sw1-t12")
    }

    /// A trial asked and a trial told are `trial` events of the sweep,
    /// written with the change; an epoch reported to the pruner is not.
    @Test(arguments: Driver.allCases)
    func trialsAskedAndToldAreEventsOfTheSweep(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        try await store.insertSweep(Sweep(id: "sw", study: "s", experiment: "e", config: .object([:]), createdAt: Date()), secrets: [:])
        try await store.updateSweep("sw") { $0.trials.append(Sweep.Trial(number: 0, jobID: "sw-t0", params: ["train.lr0": 0.1])) }
        try await store.updateSweep("sw") { $0.trials[0].reported = 3 }
        try await store.updateSweep("sw") { $0.trials[0].told = .succeeded; $0.trials[0].value = 0.5 }
        try await store.updateSweep("sw") { $0.trials[0].value = 0.6 }  // told once only
        let events = try await store.events(after: 0, limit: 10, filter: EventFilter(entity: .sweep, id: "sw"))
        #expect(events.map(\.type) == ["state", "trial", "trial"])
        #expect(events[1].payload["state"] == "asked" && events[1].payload["params"]?["train.lr0"] == 0.1)
        #expect(events[2].payload["state"] == "succeeded" && events[2].payload["value"] == 0.5 && events[2].payload["job_id"] == "sw-t0")
    }
}
