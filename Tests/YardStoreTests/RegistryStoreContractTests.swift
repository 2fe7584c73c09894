import Foundation
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// `RegistryStore`: the same expectations for every driver.
@Suite("RegistryStore contract")
struct RegistryStoreContractTests {
    typealias Driver = JobStoreContractTests.Driver

    /// The registry of record: the store numbers versions per model, a job
    /// registered again under the same name is the version it made, and
    /// every alias move is kept with what it replaced.
    @Test(arguments: Driver.allCases)
    func modelVersionsAreNumberedPerModelAndAliasMovesAreKept(driver: Driver) async throws {
        let store: any RegistryStore = try JobStoreContractTests.make(driver)
        func draft(_ name: String, _ job: String) -> ModelVersion {
            var v = ModelVersion(name: name, version: "", jobID: job, runID: "", source: "\(job)/weights/best.pt", createdAt: Date(timeIntervalSince1970: 100))
            v.sha256 = String(repeating: "a", count: 64)
            return v
        }
        let (v1, made1) = try await store.createModelVersion(draft("det", "j1"))
        let (v2, _) = try await store.createModelVersion(draft("det", "j2"))
        let (other, _) = try await store.createModelVersion(draft("cls", "j1"))
        let (again, made) = try await store.createModelVersion(draft("det", "j1"))
        #expect(made1 && !made)
        #expect([v1.version, v2.version, other.version, again.version] == ["1", "2", "1", "1"])

        let set = try await store.setModelAlias(name: "det", alias: "production", version: "1", reason: "alias", time: Date(timeIntervalSince1970: 200))
        #expect(set.previous == nil)
        let moved = try await store.setModelAlias(name: "det", alias: "production", version: "2", reason: "deploy", time: Date(timeIntervalSince1970: 300))
        #expect(moved.previous == "1" && moved.version == "2")
        await #expect(throws: YardError.self) {
            try await store.setModelAlias(name: "det", alias: "production", version: "9", reason: "alias", time: Date())
        }
        #expect(try await store.modelVersions(name: "det").map { "\($0.version):\($0.aliases)" } == ["2:[\"production\"]", "1:[]"])
        let removed = try await store.setModelAlias(name: "det", alias: "production", version: nil, reason: "removed", time: Date(timeIntervalSince1970: 400))
        #expect(removed.previous == "2")
        #expect(try await store.modelVersions(name: "det").allSatisfy { $0.aliases.isEmpty })
        let history = try await store.aliasHistory(name: "det", alias: "production", limit: 10)
        #expect(history.map(\.reason) == ["removed", "deploy", "alias"])
        #expect(history.map(\.version) == [nil, "2", "1"])
        #expect(try await store.aliasHistory(name: "det", alias: nil, limit: 2).count == 2)

        let updated = try await store.updateModelVersion(name: "det", version: "2") { $0.mlflowVersion = "7"; $0.version = "99" }
        #expect(updated.version == "2" && updated.mlflowVersion == "7")
        #expect(try await store.modelVersions(name: "det").first?.mlflowVersion == "7")
        await #expect(throws: YardError.self) { try await store.updateModelVersion(name: "det", version: "5") { _ in } }

        // Serving settings are per model, replaced whole.
        #expect(try await store.modelSettings(name: "det") == nil)
        try await store.setModelSettings(name: "det", ModelSettings(blurFaces: FaceBlur(minNeighbors: 3)))
        #expect(try await store.modelSettings(name: "det")?.blurFaces?.minNeighbors == 3)
        try await store.setModelSettings(name: "det", ModelSettings())
        #expect(try await store.modelSettings(name: "det") == ModelSettings())
        #expect(try await store.modelSettings(name: "seg") == nil)
    }

    /// A new version and an alias move are events of the model, written with the change.
    @Test(arguments: Driver.allCases)
    func versionsAndAliasMovesAreEventsOfTheModel(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        let draft = ModelVersion(name: "det", version: "", jobID: "j1", runID: "", source: "j1/weights/best.pt", createdAt: Date())
        _ = try await store.createModelVersion(draft)
        _ = try await store.createModelVersion(draft)  // the same job again: no new version, no event
        try await store.setModelAlias(name: "det", alias: "production", version: "1", reason: "deploy", time: Date())
        let events = try await store.events(after: 0, limit: 10, filter: EventFilter(entity: .model, id: "det"))
        #expect(events.map(\.type) == ["version", "alias"])
        #expect(events[1].payload["alias"] == "production" && events[1].payload["version"] == "1")
    }
}
