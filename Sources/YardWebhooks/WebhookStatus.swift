import Foundation

/// What `GET /api/webhooks` and `yard webhooks` show: each target with its
/// URL masked to scheme and host, its filter, its last delivery, its last
/// error and how many deliveries wait.
public struct WebhookStatus: Codable, Sendable {
    public struct Target: Codable, Sendable {
        /// `server-HASH`, `job:ID` or `sweep:ID`.
        public var key: String
        public var kind: String
        public var url: String
        public var events: [String]?
        public var format: String
        public var lastSequence: Int64?
        public var lastTime: String?
        public var lastStatus: Int?
        public var lastError: String?
        public var lastErrorTime: String?
        public var pending: Int
        public var delivered: Int
        public var givenUp: Int

        enum CodingKeys: String, CodingKey {
            case key, kind, url, events, format, pending, delivered
            case lastSequence = "last_sequence", lastTime = "last_time", lastStatus = "last_status"
            case lastError = "last_error", lastErrorTime = "last_error_time", givenUp = "given_up"
        }
    }

    /// The last event of the log handled.
    public var cursor: Int64
    /// Set when retention removed events past the cursor (the deliverer went on from the floor).
    public var note: String?
    public var targets: [Target]
    public var pending: Int
}
