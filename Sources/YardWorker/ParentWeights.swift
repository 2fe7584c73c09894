import Crypto
import Foundation
import YardArtifacts
import YardDomain

/// The weights of the registered version a job fine-tunes from
/// (`model: models:/NAME@...`), fetched into the job's folder and checked
/// against the sha256 pinned at submit: a version whose weights changed
/// where they are kept is refused, never trained from.
struct ParentWeights {
    let parent: ParentModel
    let dataDirectory: String
    let artifacts: any ArtifactStore

    /// The checked file's path in `folder`.
    func fetch(into folder: String) async throws -> String {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let target = folder + "/parent-\(parent.name)-v\(parent.version).pt"
        let label = "model: \(parent.name) version \(parent.version)"
        // The server's model cache (the same machine in `yard up`), else the version's artifact.
        let cached = "\(dataDirectory)/models/sha256/\(parent.sha256.prefix(2))/\(parent.sha256).pt"
        var reasons: [String] = []
        var found = false
        if FileManager.default.fileExists(atPath: cached), (try? FileCopy.copy(from: cached, to: target)) == true {
            found = true
        }
        for location in parent.locations where !found && location.kind == .artifact {
            do {
                try await artifacts.get(key: location.key, to: target)
                found = true
            } catch {
                reasons.append("\(location.key): \(Redaction.redactText("\(error)").prefix(200))")
            }
        }
        guard found else {
            throw YardError(.notFound, field: "model", "\(label): its weights are in no place this worker can read"
                            + (reasons.isEmpty ? " (not in the model cache, no artifact location)" : " (\(reasons.joined(separator: "; ")))"))
        }
        let digest = try await offloadThrowing { () throws(YardError) in try FileDigest.sha256(of: target) }
        guard digest == parent.sha256 else {
            try? FileManager.default.removeItem(atPath: target)
            throw YardError(.conflict, field: "model", "\(label): its weights changed where they are kept (sha256 \(digest.prefix(12)), registered \(parent.sha256.prefix(12))); not training from them")
        }
        return target
    }
}
