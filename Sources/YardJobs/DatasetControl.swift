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
        try await authorise(name: version.name)
        var version = version
        version.createdBy = version.createdBy ?? Caller.current?.name
        return try await store.recordDatasetVersion(version)
    }

    /// A member adds versions only to its own datasets (whose first version
    /// it added) and to new names; an admin to any. Viewers never get here
    /// (the route needs a member). Nobody is checked without a caller (no
    /// token on the server, or the server's own work).
    public func authorise(name: String, caller: Caller? = Caller.current) async throws {
        guard let caller, caller.role == .member,
              let first = try await store.datasetVersions(name: name).min(by: { $0.number < $1.number }),
              first.createdBy != caller.name else { return }
        throw YardError(.forbidden, field: "name",
                        "forbidden: \(caller.name) is a member and may add versions only to its own datasets; dataset \(name) is \(first.createdBy.map { "\($0)'s" } ?? "nobody's (added before users)"); pick another name or ask an admin")
    }
}
