import Foundation
import YardDomain
import YardStore

/// Every change of the dataset records: a version added (numbered after
/// its name's last one, with its `version` event). The dataset service
/// reads, validates and stores the files; the record changes here.
public struct DatasetControl: Sendable {
    public let store: any JobStore

    public init(store: any JobStore) {
        self.store = store
    }

    /// Records a version whose objects are stored; the same name and id
    /// again adds nothing and returns the version recorded before.
    public func versionAdded(_ version: DatasetVersion) async throws -> (DatasetVersion, created: Bool) {
        var version = version
        version.createdBy = version.createdBy ?? Caller.current?.name
        return try await store.recordDatasetVersion(version)
    }
}
