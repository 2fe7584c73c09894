import Foundation
import YardDomain

/// `yard rerun --from-bundle B.tar`: the bundle's config submitted to this
/// server with its seed, on the registered dataset version with the
/// bundle's DVC hash (or the data `--data` names) and from the registered
/// version with its parent's sha256. Its masked secrets are not in the
/// bundle: sections that needed them (minio, notify) are left out, said so.
struct BundleRerun {
    let client: APIClient
    let bundle: LineageBundleFile
    let original: Lineage
    let data: String?

    func submit() async throws -> String {
        var document = try bundle.config
        document["task_id"] = nil
        document["deploy"] = nil
        if var mlflow = document["mlflow"]?.objectValue {
            mlflow["register_model"] = nil
            mlflow["register_alias"] = nil
            document["mlflow"] = .object(mlflow)
        }
        var left: [String] = []
        for key in document.keys.sorted() where Self.masked(document[key]!) {
            if key == "minio" || key == "notify" {
                document[key] = nil
                left.append(key)
            } else if case .object(let section) = document[key]! {
                let kept = section.filter { !Self.masked($0.value) }
                left += section.keys.filter { kept[$0] == nil }.sorted().map { "\(key).\($0)" }
                document[key] = .object(kept)
            }
        }
        if !left.isEmpty { Output.warning("left out (bundles carry no secrets): \(left.joined(separator: ", "))") }
        var train = document["train"]?.objectValue ?? [:]
        train["data"] = .string(try await resolveData(data ?? train["data"]?.stringValue ?? ""))
        document["train"] = .object(train)
        if let parent = original.parent { document["model"] = .string(try await registered(parent)) }
        var metadata = document["metadata"]?.objectValue ?? [:]
        metadata["sweep_id"] = nil
        metadata["trial_number"] = nil
        metadata["rerun_from_bundle"] = .string(original.job.id)
        document["metadata"] = .object(metadata)

        var headers: [String: String] = [:]
        if let commit = original.code.commit { headers["X-Yard-Git-Commit"] = commit }
        if let dirty = original.code.dirty { headers["X-Yard-Git-Dirty"] = dirty ? original.code.diff ?? "" : "clean" }
        let body = try JSONEncoder().encode(JSONValue.object(document))
        let created = try JSONDecoder().decode([String: String].self, from: try await client.send(.POST, "/api/jobs", body: body, headers: headers))
        let id = created["id"] ?? "?"
        Output.line("rerun of \(original.job.id) (from \(bundle.path)) submitted as \(id) (seed \(train["seed"]?.intValue.map(String.init) ?? "-"), data \(train["data"]?.stringValue ?? "-"))")
        return id
    }

    static func masked(_ value: JSONValue) -> Bool {
        switch value {
        case .string(let text): text.contains(Redaction.mask)
        case .object(let object): object.values.contains(where: masked)
        case .array(let items): items.contains(where: masked)
        default: false
        }
    }

    /// A registered dataset pinned to the version with the bundle's DVC hash; a path made absolute.
    func resolveData(_ wanted: String) async throws -> String {
        guard DatasetReference.isReference(wanted) else {
            guard !wanted.isEmpty else { throw YardError.invalid("--data", "the bundle's config names no data; give --data dataset:NAME or a path") }
            if original.dataset.hash != nil { Output.warning("the data's DVC hash is compared with the bundle's when the rerun ends (--wait)") }
            if wanted.hasPrefix("/") || wanted.hasPrefix("s3://") { return wanted }
            return URL(fileURLWithPath: wanted, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
        }
        let name = try DatasetReference.parse(wanted).name
        guard let hash = original.dataset.hash else { return DatasetReference.scheme + name }
        struct Versions: Decodable { struct Version: Decodable { var id: String; var number: Int }; var versions: [Version] }
        let versions = try await client.get("/api/datasets/\(Models.path(name))", as: Versions.self).versions
        guard versions.contains(where: { $0.id == hash }) else {
            throw YardError(.notFound, field: "--data", "--data: dataset \(name) has no version with the bundle's DVC hash \(hash) (it has \(versions.map { "\($0.number): \($0.id.prefix(12))" }.joined(separator: ", "))); add the same files with `yard datasets add \(name) FOLDER`")
        }
        return DatasetReference.scheme + name + "@" + hash
    }

    /// The registered version here whose weights have the parent's sha256.
    func registered(_ parent: ParentModel) async throws -> String {
        struct Versions: Decodable { var versions: [ModelVersion] }
        let versions = (try? await client.get("/api/models?name=\(Models.path(parent.name))", as: Versions.self).versions) ?? []
        guard let same = versions.first(where: { $0.sha256 == parent.sha256 }) else {
            throw YardError(.notFound, field: "model", "model: the starting weights of \(parent.name) version \(parent.version) (sha256 \(parent.sha256.prefix(12))) are not registered on this server; register the same weights as \(parent.name) first")
        }
        return "\(ModelReference.scheme)\(same.name)@v\(same.version)"
    }
}
