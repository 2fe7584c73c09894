import Foundation
import HTTPTypes
import Hummingbird

/// Counts every request by the route the router matched (its template,
/// `/api/jobs/{id}`, never the raw path; `unmatched` for anything else),
/// its method and status, and times it to the response head. An error a
/// handler throws is counted with the status it becomes. A Server-Sent
/// Events response counts as an open stream (`trainyard_sse_clients`)
/// while its body is written. The outermost middleware, so it times and
/// counts what the others refuse too.
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: YardMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            var response = try await next(request, context)
            let route = YardMetrics.route(context.endpointPath)
            metrics.request(route: route, method: request.method.rawValue, status: response.status.code, duration: .now - start)
            if response.headers[.contentType]?.hasPrefix("text/event-stream") == true {
                let body = response.body
                let streams = metrics.streams(route: route)
                response.body = ResponseBody(contentLength: body.contentLength) { writer in
                    streams.increment()
                    defer { streams.decrement() }
                    try await body.write(writer)
                }
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.request(route: YardMetrics.route(context.endpointPath), method: request.method.rawValue, status: status, duration: .now - start)
            throw error
        }
    }
}
