import Foundation
import Hummingbird
import YardDomain

/// Every error the API returns: `{"error": code, "message": one line, "field": ...}`.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    let field: String?
    /// Extra headers of the answer (Retry-After of a 429).
    var headers = HTTPFields()

    init(_ error: YardError) {
        switch error.code {
        case .invalidInput: status = .badRequest
        case .notFound: status = .notFound
        case .conflict: status = .conflict
        case .unauthorized: status = .unauthorized
        case .forbidden: status = .forbidden
        case .tooLarge: status = .contentTooLarge
        case .unsupportedMediaType: status = .unsupportedMediaType
        case .unavailable: status = .serviceUnavailable
        default: status = .internalServerError
        }
        code = error.code.description
        message = error.message
        field = error.field
    }

    init(status: HTTPResponse.Status, code: String, field: String? = nil, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var body: [String: String] = ["error": code, "message": message]
        if let field { body["field"] = field }
        let data = try JSONEncoder().encode(body)
        var headers = self.headers
        headers[.contentType] = "application/json"
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Maps library errors to API errors in one place. An error we do not know
/// is logged and becomes a 500 that says nothing about our internals.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as YardError {
            throw APIError(error)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            throw APIError(status: error.status, code: error.status == .notFound ? "not_found" : "http_error",
                           message: error.body ?? error.status.reasonPhrase)
        } catch {
            context.logger.error("unhandled error on \(request.method) \(request.uri.path): \(error)")
            throw APIError(status: .internalServerError, code: "internal", message: "internal error; see the server log")
        }
    }
}
