import Foundation
import YardDomain

/// What the deliverer keeps across restarts (`DATA/webhooks.json`, written
/// whole or not at all): the last event of the log it has handled, each
/// target's last delivery and error, and the deliveries not yet made. No
/// URL or secret is in it: a delivery names its target by key and the
/// target is found again from the flags or the job's sealed config.
struct WebhookState: Codable, Sendable {
    /// The last sequence of the log handled (its deliveries are in `pending` or done).
    var cursor: Int64 = 0
    /// Events before this time are not sent (a fresh state starts at the present, not with the log's history).
    var since: Date
    /// Said when retention had removed events above the cursor.
    var note: String?
    var targets: [String: TargetRecord] = [:]
    var pending: [PendingDelivery] = []

    init(since: Date) { self.since = since }

    struct TargetRecord: Codable, Sendable {
        var url: String  // scheme and host only
        var events: [String]?
        var format: String
        var cursor: Int64 = 0
        var lastSequence: Int64?
        var lastTime: Date?
        var lastStatus: Int?
        var lastError: String?
        var lastErrorTime: Date?
        var delivered = 0
        var givenUp = 0
        var touched: Date
    }

    struct PendingDelivery: Codable, Sendable {
        var target: String
        var sequence: Int64
        var event: String
        var body: Data
        var attempts = 0
        var first: Date
        var next: Date
        var lastError: String?

        var id: String { "\(target)#\(sequence)" }
    }
}

/// Loads and saves the state file.
struct WebhookStateFile: Sendable {
    let path: String

    func load(now: Date) throws -> WebhookState {
        guard let data = FileManager.default.contents(atPath: path) else { return WebhookState(since: now) }
        do {
            return try Self.decoder.decode(WebhookState.self, from: data)
        } catch {
            throw YardError(.internal, field: path, "\(path) is not a webhook state file (\(error)); move it away to start the webhooks afresh")
        }
    }

    func save(_ state: WebhookState) throws {
        try AtomicFile.write(try Self.encoder.encode(state), to: path)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()
}
