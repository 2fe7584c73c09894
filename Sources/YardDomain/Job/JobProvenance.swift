import Foundation

/// What made a job, beyond its config: the state of the submitter's code,
/// the registered model it fine-tunes, the job it reruns and the machine
/// that ran it. `yard lineage` puts these beside the job's other records.
public struct JobProvenance: Sendable, Codable, Hashable {
    /// Whether the submitting folder had uncommitted changes (nil: unknown,
    /// e.g. not a git repo or an API client that did not say).
    public var gitDirty: Bool?
    /// sha256 of `git diff HEAD` when it was dirty: the same edits hash the same.
    public var gitDiff: String?
    /// The registered version whose weights it started from (`model: models:/NAME@...`).
    public var parent: ParentModel?
    /// The job it is a rerun of (`yard rerun`).
    public var rerunOf: String?
    /// The host name of the machine the engine ran on (its last attempt).
    public var host: String?

    public init(gitDirty: Bool? = nil, gitDiff: String? = nil, parent: ParentModel? = nil, rerunOf: String? = nil, host: String? = nil) {
        self.gitDirty = gitDirty
        self.gitDiff = gitDiff
        self.parent = parent
        self.rerunOf = rerunOf
        self.host = host
    }

    enum CodingKeys: String, CodingKey {
        case gitDirty = "git_dirty", gitDiff = "git_diff", parent, rerunOf = "rerun_of", host
    }

    /// The code state as the CLI sends it (`X-Yard-Git-Dirty`): `clean`, or
    /// the diff's sha256 (64 hex digits). Anything else is not recorded.
    public static func gitState(header: String) -> (dirty: Bool, diff: String?)? {
        let value = header.trimmingCharacters(in: .whitespaces).lowercased()
        if value == "clean" { return (false, nil) }
        guard value.count == 64, value.allSatisfy(\.isHexDigit) else { return nil }
        return (true, value)
    }
}

/// A registered model version a job fine-tuned from, pinned at submit:
/// the version it resolved to (an alias moves; the number does not) and
/// the sha256 its weights must have when the worker loads them.
public struct ParentModel: Sendable, Codable, Hashable {
    public var name: String
    public var version: String
    /// What the config asked for (`models:/det@production`).
    public var requested: String
    public var sha256: String
    /// Where the worker fetches the weights from (the version's own places).
    public var locations: [WeightsLocation]

    public init(name: String, version: String, requested: String, sha256: String, locations: [WeightsLocation]) {
        self.name = name
        self.version = version
        self.requested = requested
        self.sha256 = sha256
        self.locations = locations
    }

    /// `models:/NAME@vN`: the pinned form a rerun submits again.
    public var reference: String { "\(ModelReference.scheme)\(name)@v\(version)" }
}

/// `models:/NAME`, `models:/NAME@ALIAS` or `models:/NAME@vN` (also `@N`).
public struct ModelReference: Sendable, Hashable {
    public static let scheme = "models:/"
    public var name: String
    /// The version number when the reference names one.
    public var version: String?
    public var alias: String?

    public static func isReference(_ text: String) -> Bool { text.hasPrefix(scheme) }

    /// Parses the text after `models:/` or a bare `NAME@...` (`field` names the config key in errors).
    public static func parse(_ text: String, field: String = "model") throws(YardError) -> ModelReference {
        let body = text.hasPrefix(scheme) ? String(text.dropFirst(scheme.count)) : text
        let parts = body.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        try ModelVersion.validateName(name, field: field)
        guard parts.count == 2 else { return ModelReference(name: name, version: nil, alias: nil) }
        let selector = parts[1]
        let digits = selector.hasPrefix("v") ? String(selector.dropFirst()) : selector
        if !digits.isEmpty, digits.count <= 9, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let n = Int(digits), n > 0 {
            return ModelReference(name: name, version: String(n), alias: nil)
        }
        try ModelVersion.validateName(selector, field: field)
        return ModelReference(name: name, version: nil, alias: selector)
    }

    /// The version this names among its model's versions: the one with its
    /// number, the one holding its alias, else the latest; nil: none does.
    public func pick(from versions: [ModelVersion]) -> ModelVersion? {
        if let version { return versions.first { $0.version == version } }
        if let alias { return versions.first { $0.aliases.contains(alias) } }
        return versions.max { (Int($0.version) ?? 0) < (Int($1.version) ?? 0) }
    }

    /// Why `pick` found nothing, for a message: "has no version 3 (versions 1, 2)".
    public func missing(among versions: [ModelVersion]) -> String {
        let what = version.map { "version \($0)" } ?? "alias \(alias ?? "")"
        let numbers = versions.map(\.version).sorted { (Int($0) ?? 0) < (Int($1) ?? 0) }
        return "\(name) has no \(what) (versions \(numbers.joined(separator: ", ")))"
    }
}
