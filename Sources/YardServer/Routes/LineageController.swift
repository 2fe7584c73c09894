import Foundation
import Hummingbird
import YardDomain

/// `GET /api/lineage/{ref}`: what made a model version or a job;
/// `POST /api/jobs/{id}/rerun`: the same job submitted again.
struct LineageController<Context: RequestContext> {
    let service: LineageService

    func addRoutes(to router: Router<Context>) {
        router.get("/api/lineage/{ref}", use: lineage)
        router.get("/api/lineage/{ref}/bundle", use: bundle)
        router.post("/api/jobs/{id}/rerun", use: rerun)
    }

    @Sendable func lineage(_ request: Request, context: Context) async throws -> Response {
        let reference = try context.parameters.require("ref")
        guard reference.count <= 600 else { throw YardError.invalid("ref", "too long; give a job id or NAME@vN") }
        return try JSONResponse.make(try await service.lineage(of: reference))
    }

    @Sendable func bundle(_ request: Request, context: Context) async throws -> Response {
        let reference = try context.parameters.require("ref")
        guard reference.count <= 600 else { throw YardError.invalid("ref", "too long; give a job id or NAME@vN") }
        let lineage = try await service.lineage(of: reference)
        let tar = TarWriter.archive(try await LineageBundle(service: service).files(for: lineage))
        let name = lineage.model.map { "\($0.name)-v\($0.version)" } ?? lineage.job.id
        return Response(status: .ok, headers: [.contentType: "application/x-tar",
                                               .contentDisposition: "attachment; filename=\"lineage-\(name).tar\""],
                        body: .init(byteBuffer: ByteBuffer(bytes: tar)))
    }

    @Sendable func rerun(_ request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("id")
        guard JobID.isValid(id) else { throw YardError(.notFound, field: "id", "no job \(id.prefix(40))") }
        guard try await service.store.job(id) != nil else { throw YardError(.notFound, field: "id", "no job \(id.prefix(40))") }
        let latest = try Query.bool(request, "on_latest_data") ?? false
        return try JSONResponse.make(try await service.rerun(id, onLatestData: latest), status: .created)
    }
}
