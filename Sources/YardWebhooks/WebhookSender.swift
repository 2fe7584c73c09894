import AsyncHTTPClient
import Foundation
import NIOCore
import YardDomain

/// Sends one delivery: POST of the body, signed when the target has a
/// secret; no redirect followed; 10 s for the whole exchange; at most 4 KiB
/// of the answer read. The outcome is a status code or a short error that
/// names the target by scheme and host only.
struct WebhookSender: Sendable {
    struct Outcome: Sendable {
        var status: Int?
        var error: String?
        var delivered: Bool { error == nil }
    }

    let client: HTTPClient
    let timeout: Duration
    let allowPrivate: Bool
    static let maxAnswerBytes = 4096

    static func makeClient(timeout: Duration) -> HTTPClient {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                     timeout: .init(connect: .init(timeout), read: .init(timeout)))
        configuration.httpVersion = .http1Only
        // A refused connection is a failed try at once: the deliverer retries with its own backoff.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func send(_ body: Data, sequence: Int64, to target: WebhookTarget, now: Date) async -> Outcome {
        do {
            try await AddressGuard.check(target.url, allowPrivate: allowPrivate)
        } catch {
            return Outcome(status: nil, error: "\(error)")
        }
        var request = HTTPClientRequest(url: target.url.text)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Trainyard-Webhooks")
        request.headers.add(name: WebhookSignature.deliveryHeader, value: String(sequence))
        if let secret = target.secret {
            let timestamp = Int64(now.timeIntervalSince1970)
            request.headers.add(name: WebhookSignature.timestampHeader, value: String(timestamp))
            request.headers.add(name: WebhookSignature.signatureHeader, value: WebhookSignature.sign(body: body, timestamp: timestamp, secret: secret))
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let prepared = request
        do {
            let response = try await withDeadline(timeout) {
                let response = try await client.execute(prepared, timeout: .init(timeout))
                var read = 0
                for try await chunk in response.body {
                    read += chunk.readableBytes
                    if read >= Self.maxAnswerBytes { break }
                }
                return Int(response.status.code)
            }
            switch response {
            case 200..<300: return Outcome(status: response, error: nil)
            case 300..<400: return Outcome(status: response, error: "\(target.url.masked) answered \(response) (redirects are not followed)")
            default: return Outcome(status: response, error: "\(target.url.masked) answered \(response)")
            }
        } catch let error where error is DeadlineExceeded || Self.isTimeout(error) {
            // Ours or the client's deadline, whichever fired first: the same words.
            return Outcome(status: nil, error: "\(target.url.masked) did not answer within \(timeout)")
        } catch {
            return Outcome(status: nil, error: "\(target.url.masked): \(Self.describe(error))")
        }
    }

    static func isTimeout(_ error: any Error) -> Bool {
        guard let error = error as? HTTPClientError else { return false }
        return error == .deadlineExceeded || error == .readTimeout
    }

    /// An AHC or NIO error in a few words (never the URL: they may carry it).
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "connect timed out"
            case .readTimeout, .deadlineExceeded: return "timed out"
            case .remoteConnectionClosed: return "the connection was closed"
            case .cancelled: return "cancelled"
            default: return "request failed (\(String(describing: error).prefix(80)))"
            }
        }
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return "request failed (\(Redaction.redactText(String(text.prefix(120)))))"
    }
}
