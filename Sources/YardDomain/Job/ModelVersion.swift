import Foundation

/// A registered model version, mirrored from MLflow's registry so the CLI
/// can list versions and aliases without MLflow.
public struct ModelVersion: Sendable, Codable, Hashable {
    public var name: String
    public var version: String
    public var jobID: String
    public var runID: String
    public var source: String
    public var createdAt: Date
    public var aliases: [String]

    public init(name: String, version: String, jobID: String, runID: String, source: String, createdAt: Date, aliases: [String] = []) {
        self.name = name
        self.version = version
        self.jobID = jobID
        self.runID = runID
        self.source = source
        self.createdAt = createdAt
        self.aliases = aliases
    }

    enum CodingKeys: String, CodingKey {
        case name, version, source, aliases
        case jobID = "job_id", runID = "run_id", createdAt = "created_at"
    }

    /// Registered model names and aliases: letters, digits, `_ - .`, at most 256.
    public static func validateName(_ name: String, field: String) throws(YardError) {
        let ok = !name.isEmpty && name.count <= 256 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }
        guard ok else { throw YardError.invalid(field, "\"\(name.prefix(40))\" must be 1-256 letters, digits, '_', '-' or '.'") }
    }
}
