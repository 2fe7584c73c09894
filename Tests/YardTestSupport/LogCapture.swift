import Logging
import Synchronization

/// Log records kept in memory, by level.
public final class LogCapture: Sendable {
    public let records = Mutex<[(Logger.Level, String)]>([])

    public init() {}

    public var logger: Logger {
        Logger(label: "capture") { _ in Handler(capture: self) }
    }

    public func count(of level: Logger.Level) -> Int { records.withLock { $0.filter { $0.0 == level }.count } }

    public func messages(_ level: Logger.Level) -> [String] { records.withLock { $0.filter { $0.0 == level }.map(\.1) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.records.withLock { $0.append((event.level, event.message.description)) }
        }
    }
}
