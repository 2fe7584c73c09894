import Foundation
import HTTPTypes
import Hummingbird
import YardDomain
import YardServing
import YardStore

/// `/api/models`: the registry of record (versions, aliases and their
/// history, the weights by content hash).
struct ModelsController<Context: RequestContext> {
    let registry: ModelRegistry

    func addRoutes(to group: RouterGroup<Context>) {
        group.get(use: list)
        group.post(use: register)
        group.get("{name}", use: show)
        group.post("{name}/aliases", use: setAlias)
        group.get("{name}/aliases/{alias}", use: resolve)
        group.delete("{name}/aliases/{alias}", use: removeAlias)
        group.post("{name}/aliases/{alias}/rollback", use: rollback)
        group.get("{name}/versions/{version}/weights", use: weights)
        group.post("{name}/versions/{version}/export", use: export)
        group.get("{name}/settings", use: settings)
        group.put("{name}/settings", use: setSettings)
    }

    struct RegisterBody: Decodable {
        var job_id: String
        var name: String
        var alias: String?
    }

    struct AliasBody: Decodable {
        var alias: String
        var version: String
    }

    /// One model: its versions (newest first), where each alias points.
    struct Model: Encodable {
        var name: String
        var latest: String
        var aliases: [String: String]
        var versions: [ModelVersion]
    }

    static func group(_ versions: [ModelVersion]) -> [Model] {
        Dictionary(grouping: versions, by: \.name).map { name, versions in
            var aliases: [String: String] = [:]
            for version in versions { for alias in version.aliases { aliases[alias] = version.version } }
            let sorted = versions.sorted { (Int($0.version) ?? 0) > (Int($1.version) ?? 0) }
            return Model(name: name, latest: sorted.first?.version ?? "", aliases: aliases, versions: sorted)
        }.sorted { $0.name < $1.name }
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let name = Query.string(request, "name")
        let versions = try await registry.store.modelVersions(name: name)
        return try JSONResponse.make(ListBody(models: Self.group(versions), versions: versions))
    }

    struct ListBody: Encodable {
        var models: [Model]
        var versions: [ModelVersion]
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let versions = try await registry.store.modelVersions(name: name)
        guard let model = Self.group(versions).first else {
            throw YardError(.notFound, field: "name", "no model \(name); `yard models list` shows the registered ones")
        }
        let history = try await registry.store.aliasHistory(name: name, alias: nil, limit: 200)
        return try JSONResponse.make(ShowBody(model: model, history: history))
    }

    struct ShowBody: Encodable {
        var model: Model
        var history: [AliasChange]
    }

    @Sendable func register(_ request: Request, context: Context) async throws -> Response {
        let body = try await decode(RegisterBody.self, request, example: #"{"job_id": "...", "name": "...", "alias": "champion"}"#)
        let (version, created) = try await registry.register(jobID: body.job_id, name: body.name, alias: body.alias)
        return try JSONResponse.make(version, status: created ? .created : .ok)
    }

    @Sendable func setAlias(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let body = try await decode(AliasBody.self, request, example: #"{"alias": "production", "version": "1"}"#)
        return try JSONResponse.make(try await registry.setAlias(name: name, version: body.version, alias: body.alias, reason: "alias"))
    }

    @Sendable func removeAlias(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let alias = try context.parameters.require("alias")
        _ = try await registry.resolve(name: name, version: nil, alias: alias)
        return try JSONResponse.make(try await registry.setAlias(name: name, version: nil, alias: alias, reason: "removed"))
    }

    @Sendable func rollback(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let alias = try context.parameters.require("alias")
        return try JSONResponse.make(try await registry.rollback(name: name, alias: alias))
    }

    @Sendable func resolve(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let alias = try context.parameters.require("alias")
        let version = try await registry.resolve(name: name, version: nil, alias: alias)
        return try JSONResponse.make(["name": name, "alias": alias, "version": version.version])
    }

    /// The version's weights file (fetched into the cache first if needed),
    /// or with `?format=onnx` its export.
    @Sendable func weights(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let number = try context.parameters.require("version")
        let version = try await registry.resolve(name: name, version: number, alias: nil)
        let format = Query.string(request, "format") ?? "pt"
        let path: String, sha256: String
        if format == "pt" {
            path = try await registry.weights.file(for: version)
            sha256 = version.sha256 ?? ""
        } else {
            try ExportedWeights.validate(format: format)
            guard let export = version.exports?[format] else {
                throw YardError(.notFound, field: "format", "\(name) version \(number) has no \(format) export; make it: yard models export \(name) \(number) --format \(format)")
            }
            path = try registry.weights.file(for: export, of: version)
            sha256 = export.sha256
        }
        // Streamed from disk in chunks: a large model (RT-DETR-X is 130 MB)
        // downloaded by many clients at once is never held whole in memory.
        let body = try await FileIO().loadFile(path: path, context: context)
        let ext = ExportedWeights.fileExtension(format)
        return Response(status: .ok, headers: [.contentType: "application/octet-stream",
                                               .contentDisposition: "attachment; filename=\"\(name)-v\(number).\(ext)\"",
                                               HTTPField.Name("X-Content-SHA256")!: sha256],
                        body: body)
    }

    /// `?format=onnx`: the version's weights in that format, made once and
    /// kept (an export made before is returned as it is).
    @Sendable func export(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let number = try context.parameters.require("version")
        let format = Query.string(request, "format") ?? "onnx"
        return try JSONResponse.make(try await registry.export(name: name, version: number, format: format))
    }

    /// The model's serving settings: `{"blur_faces": null}` or
    /// `{"blur_faces": {"scale_factor": 1.1, "min_neighbors": 5, "min_size": 24, "detect_side": 1280}}`.
    @Sendable func settings(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        return try JSONResponse.make(SettingsBody(try await registry.settings(name: name)))
    }

    @Sendable func setSettings(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let example = #"{"blur_faces": {"min_neighbors": 5}} or {"blur_faces": null}"#
        let raw = try await decode(JSONValue.self, request, example: example)
        // Strict: a misspelt key must not switch blurring off with a 200.
        guard let fields = raw.objectValue, fields["blur_faces"] != nil else {
            throw YardError.invalid("blur_faces", "missing; send \(example)")
        }
        if let unknown = fields.keys.sorted().first(where: { $0 != "blur_faces" }) {
            throw YardError.invalid(String(unknown.prefix(60)), "is not a model setting; the settings are: blur_faces")
        }
        if let blur = fields["blur_faces"]?.objectValue,
           let unknown = blur.keys.sorted().first(where: { !["scale_factor", "min_neighbors", "min_size", "detect_side"].contains($0) }) {
            throw YardError.invalid("blur_faces.\(unknown.prefix(60))", "is not a face blurring setting; use scale_factor, min_neighbors, min_size, detect_side")
        }
        let body: ModelSettings
        do { body = try JSONDecoder().decode(ModelSettings.self, from: JSONEncoder().encode(raw)) } catch {
            throw YardError.invalid("blur_faces", "expected \(example) with numbers")
        }
        return try JSONResponse.make(SettingsBody(try await registry.setSettings(name: name, body)))
    }

    /// Settings with an absent preprocessing written as null (off), not left out.
    struct SettingsBody: Encodable {
        var settings: ModelSettings
        init(_ settings: ModelSettings) { self.settings = settings }
        enum Keys: String, CodingKey { case blurFaces = "blur_faces" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            if let blur = settings.blurFaces { try c.encode(blur, forKey: .blurFaces) } else { try c.encodeNil(forKey: .blurFaces) }
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ request: Request, example: String) async throws -> T {
        var request = request
        let buffer = try await request.collectBody(upTo: 64 << 10)
        do {
            return try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
        } catch {
            throw YardError(.invalidInput, field: "body", "body: expected JSON like \(example)")
        }
    }
}
