import Hummingbird
import NIOCore

/// The server's request context: Hummingbird's basic one, plus the
/// connection the request came on, so that `/api/events` can write each new
/// event straight into its readers' connections on their event loops
/// (`EventFanout`). Whether a connection takes such writes is checked where
/// they are made: under the router test framework the channel is a stand-in
/// that no response goes through.
public struct YardRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The request's connection.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// A context that knows the address of the client that sent the request
/// (the audit trail records it).
protocol ClientAddressContext {
    var clientAddress: String? { get }
}

extension YardRequestContext: ClientAddressContext {
    /// The peer's IP address (a proxy's when behind one), or nil under the router test framework.
    var clientAddress: String? { channel.remoteAddress?.ipAddress }
}
