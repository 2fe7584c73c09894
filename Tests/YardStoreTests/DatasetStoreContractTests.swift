import Foundation
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// `DatasetStore`: the same expectations for every driver.
@Suite("DatasetStore contract")
struct DatasetStoreContractTests {
    typealias Driver = JobStoreContractTests.Driver

    static func version(_ name: String, _ id: String, at seconds: Double) -> DatasetVersion {
        DatasetVersion(name: name, number: 0, id: id, createdAt: Date(timeIntervalSince1970: seconds), source: "/data/\(name)", format: "yolo", task: "detect",
                       files: 10, bytes: 100, classes: ["a"], splits: [:], errors: 0, warnings: 0, notes: [])
    }

    /// Versions are numbered per name; the same content again is the
    /// version stored (no new number, no event); lists are newest first.
    @Test(arguments: Driver.allCases)
    func versionsAreNumberedPerNameAndTheSameContentIsOneVersion(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        let (first, made1) = try await store.recordDatasetVersion(Self.version("shapes", String(repeating: "a", count: 32), at: 1))
        let (second, _) = try await store.recordDatasetVersion(Self.version("shapes", String(repeating: "b", count: 32), at: 2))
        let (other, _) = try await store.recordDatasetVersion(Self.version("cars", String(repeating: "a", count: 32), at: 3))
        let (again, made) = try await store.recordDatasetVersion(Self.version("shapes", String(repeating: "a", count: 32), at: 4))
        #expect(made1 && !made)
        #expect([first.number, second.number, other.number, again.number] as [Int] == [1, 2, 1, 1])
        #expect(try await store.datasetVersions(name: "shapes").map(\.number) == [2, 1])
        #expect(try await store.datasetVersions(name: nil).count == 3)
        #expect(try await store.datasetVersions(name: "none").isEmpty)
        let events = try await store.events(after: 0, limit: 10, filter: EventFilter(entity: .dataset))
        #expect(events.map { "\($0.jobID) \($0.payload["number"]?.intValue ?? 0)" } == ["shapes 1", "shapes 2", "cars 1"])
    }
}
