import Foundation
import Hummingbird
import YardDomain
import YardStore
import YardTracker

/// `/api/models`: the model registry (MLflow's, mirrored in the store).
struct ModelsController<Context: RequestContext> {
    let registry: ModelRegistry
    let store: any JobStore

    func addRoutes(to group: RouterGroup<Context>) {
        group.get(use: list)
        group.post(use: register)
        group.post("{name}/aliases", use: setAlias)
        group.get("{name}/aliases/{alias}", use: resolve)
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

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let name = request.uri.queryParameters.get("name")
        return try JSONResponse.make(["versions": try await store.modelVersions(name: name)])
    }

    @Sendable func register(_ request: Request, context: Context) async throws -> Response {
        let body = try await decode(RegisterBody.self, request, example: #"{"job_id": "...", "name": "...", "alias": "champion"}"#)
        let version = try await registry.register(jobID: body.job_id, name: body.name, alias: body.alias)
        return try JSONResponse.make(version, status: .created)
    }

    @Sendable func setAlias(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let body = try await decode(AliasBody.self, request, example: #"{"alias": "champion", "version": "1"}"#)
        return try JSONResponse.make(try await registry.setAlias(name: name, version: body.version, alias: body.alias))
    }

    @Sendable func resolve(_ request: Request, context: Context) async throws -> Response {
        let name = try context.parameters.require("name")
        let alias = try context.parameters.require("alias")
        guard let version = try await registry.resolve(name: name, alias: alias) else {
            throw YardError(.notFound, field: "alias", "model \(name) has no alias \(alias)")
        }
        return try JSONResponse.make(["name": name, "alias": alias, "version": version])
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
