import Foundation
import Synchronization
import HTTPTypes
import Hummingbird
import YardDomain
import YardServing

/// `POST /api/predict/{name}`: runs a registered version on one or more
/// images. `?version=N` or `?alias=A` picks the version (default: the
/// `production` alias, else the latest); `?runtime=onnx` runs its ONNX
/// export with onnxruntime instead of torch; `conf`, `iou`, `imgsz`, `max_det`,
/// `classes`, `top_k` are Ultralytics' own. The body is one image (its bytes,
/// any `image/*` or `application/octet-stream`) or `multipart/form-data`
/// with one image per file part. Every image is checked before any reaches
/// a predictor; a bad one is a 4xx naming it.
struct PredictController<Context: RequestContext> {
    let registry: ModelRegistry
    let server: ModelServer
    let metrics: ServingMetrics
    /// Set: each request is a span (continuing the caller's `traceparent`).
    var traces: TraceExporter? = nil

    func addRoutes(to router: some RouterMethods<Context>) {
        router.post("/api/predict/{name}", use: predict)
        router.get("/api/serving", use: serving)
    }

    @Sendable func predict(_ request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        let span = traces.map { _ in PredictSpan(request) }
        // Labelled by names the registry knows only: a client cannot grow the series.
        let labels = Mutex(("_unknown", ""))
        do {
            var (response, images) = try await answer(request, context: context, started: started) { version in labels.withLock { $0 = (version.name, version.version) } }
            let (model, version) = labels.withLock { $0 }
            metrics.record(model: model, version: version, code: 200, seconds: (ContinuousClock.now - started).timeInterval, images: images)
            if let traces, let span {
                traces.record([span.finished(model: model, version: version, status: 200, images: images, error: nil)])
                response.headers[HTTPField.Name("X-Trace-Id")!] = span.traceID
            }
            return response
        } catch {
            let code = (error as? YardError).map { Int(APIError($0).status.code) } ?? 500
            let (model, version) = labels.withLock { $0 }
            metrics.record(model: model, version: version, code: code, seconds: (ContinuousClock.now - started).timeInterval, images: 0)
            if let traces, let span {
                traces.record([span.finished(model: model, version: version, status: code, images: 0,
                                             error: code >= 500 ? ((error as? YardError)?.message ?? "internal error") : nil)])
            }
            throw error
        }
    }

    private func answer(_ request: Request, context: Context, started: ContinuousClock.Instant,
                        resolved: @Sendable (ModelVersion) -> Void) async throws -> (Response, Int) {
        let name = try context.parameters.require("name")
        var options = try Self.options(request)
        let runtime = try ServingRuntime.parse(Query.string(request, "runtime"))
        let versionParameter: String? = Query.string(request, "version")
        let alias: String? = Query.string(request, "alias")
        if versionParameter != nil && alias != nil { throw YardError.invalid("version", "give ?version= or ?alias=, not both") }
        // The version first: an unknown model is refused before its body is read.
        let version = try await registry.resolve(name: name, version: versionParameter, alias: alias)
        resolved(version)
        // Bodies are held while they wait for a predictor: only so many at once.
        guard server.admit() else {
            throw YardError(.unavailable, field: "requests", "\(server.options.limits.maxWaiting) predict requests are waiting already; retry shortly")
        }
        defer { server.leave() }
        let images = try await self.images(request)
        options.blurFaces = try await registry.store.modelSettings(name: name)?.blurFaces
        // A named alias is served from now on: moving it goes through a health check.
        if let alias { await server.noteServed(alias: alias) }
        let prediction = try await server.predict(version, images: images, options: options, runtime: runtime)
        var timing = prediction.timing
        let elapsed: Double = (ContinuousClock.now - started).timeInterval * 1000
        timing["total"] = JSONValue.double((elapsed * 100).rounded() / 100)
        let body: [String: JSONValue] = [
            "model": .string(name), "version": .string(version.version), "sha256": .string(version.sha256 ?? ""),
            "aliases": .array(version.aliases.map { JSONValue.string($0) }), "task": .string(prediction.task),
            "runtime": .string(prediction.runtime.rawValue),
            "images": .array(prediction.results), "timing_ms": .object(timing),
        ]
        var response = try JSONResponse.make(JSONValue.object(body))
        response.headers[HTTPField.Name("X-Model-Version")!] = "\(name)/\(version.version)"
        response.headers[HTTPField.Name("X-Model-Runtime")!] = prediction.runtime.rawValue
        return (response, images.count)
    }

    @Sendable func serving(_ request: Request, context: Context) async throws -> Response {
        let loaded = await server.loaded()
        return try JSONResponse.make(JSONValue.object([
            "processes_per_version": .int(server.options.processes), "threads_per_process": .int(server.options.threads),
            "memory_limit_bytes": .int(Int(server.options.memoryLimit)), "loaded": .array(loaded.map { .object($0) }),
        ]))
    }

    static func options(_ request: Request) throws -> PredictOptions {
        var options = PredictOptions()
        if let conf = try Query.double(request, "conf", in: 0...1) { options.conf = conf }
        if let iou = try Query.double(request, "iou", in: 0...1) { options.iou = iou }
        options.imgsz = try Query.int(request, "imgsz", in: 32...4096)
        if let maxDet = try Query.int(request, "max_det", in: 1...3000) { options.maxDet = maxDet }
        options.classes = try Query.ints(request, "classes", in: 0...100_000)
        if let topK = try Query.int(request, "top_k", in: 1...1000) { options.topK = topK }
        return options
    }

    /// The request's images: the body itself, or each file part of a multipart body.
    private func images(_ request: Request) async throws -> [Data] {
        let limits = server.options.limits
        let contentType = request.headers[.contentType] ?? ""
        let media = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        var request = request
        if media == "multipart/form-data" {
            guard let boundary = Multipart.boundary(contentType) else {
                throw YardError.invalid("Content-Type", "multipart/form-data needs a boundary parameter")
            }
            let body = try await collect(&request, limit: max(limits.maxRequestBytes, limits.maxImageBytes))
            // Off the threads that answer other requests: linear, but up to maxRequestBytes of it.
            let parts = try await offloadThrowing { () throws(YardError) in try Multipart.parts(body, boundary: boundary, maxParts: limits.maxImages) }
            return parts.map(\.body)
        }
        guard media.hasPrefix("image/") || media == "application/octet-stream" else {
            throw YardError(.unsupportedMediaType, field: "Content-Type",
                            "Content-Type \(media.isEmpty ? "(none)" : "\"\(media.prefix(60))\"") is not an image; send image/jpeg, image/png, application/octet-stream or multipart/form-data")
        }
        return [try await collect(&request, limit: limits.maxImageBytes)]
    }

    private func collect(_ request: inout Request, limit: Int) async throws -> Data {
        do {
            return Data(try await request.collectBody(upTo: limit).readableBytesView)
        } catch {
            throw YardError(.tooLarge, field: "body", "the request body is over \(limit >> 20) MB; send smaller or fewer images (at most \(server.options.limits.maxImageBytes >> 20) MB each)")
        }
    }
}
