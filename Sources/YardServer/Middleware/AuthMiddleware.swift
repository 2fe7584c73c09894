import Hummingbird
import YardDomain

/// When a token is configured, every `/api` request must carry
/// `Authorization: Bearer TOKEN` (reads included: job configs and logs are
/// private). `/health` stays open for load balancers.
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, request.uri.path.hasPrefix("/api") else { return try await next(request, context) }
        let given = request.headers[.authorization].flatMap { value -> String? in
            value.hasPrefix("Bearer ") ? String(value.dropFirst(7)) : nil
        }
        guard let given, Self.constantTimeEqual(given, token) else {
            throw YardError(.unauthorized, field: "Authorization",
                            "missing or wrong token; set YARD_TOKEN (the CLI sends it as a Bearer token)")
        }
        return try await next(request, context)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }
}
