import NIOCore
import NIOPosix
import NIOSSL

/// One TCP connection to Redis, shared by any number of concurrent callers:
/// commands are written as they come (pipelined) and Redis answers in order,
/// so each reply completes the oldest waiting promise. A broken connection,
/// a protocol error or a timeout fails every waiting command and closes it;
/// `RedisClient` then opens a new one.
public final class RedisConnection: Sendable {
    let channel: any Channel
    let configuration: RedisConfiguration

    init(channel: any Channel, configuration: RedisConfiguration) {
        self.channel = channel
        self.configuration = configuration
    }

    /// Connects, logs in (AUTH) and selects the database.
    public static func connect(_ configuration: RedisConfiguration, name: String? = nil,
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws(RedisError) -> RedisConnection {
        let channel: any Channel
        let tls = try configuration.tls.map { tls throws(RedisError) in try Self.context(tls, for: configuration) }
        // SNI takes names only; an IP address is verified against the certificate's IP entries.
        let serverName = (try? SocketAddress(ipAddress: configuration.host, port: 0)) == nil ? configuration.host : nil
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.init(configuration.connectTimeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(RESPChannelHandler(parser: RESPParser()))
                    }
                }
                .connect(host: configuration.host, port: configuration.port)
                .get()
        } catch {
            throw .connection("cannot connect to \(configuration): \(Self.reason(error))")
        }
        let connection = RedisConnection(channel: channel, configuration: configuration)
        var setup: [[String]] = []
        if let password = configuration.password {
            setup.append(configuration.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if configuration.database != 0 { setup.append(["SELECT", String(configuration.database)]) }
        if let name { setup.append(["CLIENT", "SETNAME", name]) }
        // With TLS, one round trip now: a failed handshake is a failed connect.
        if tls != nil, setup.isEmpty { setup.append(["PING"]) }
        if !setup.isEmpty {
            let replies: [RESPValue]
            do { replies = try await connection.pipeline(setup) } catch {
                connection.close()
                if tls != nil, error.isConnectionLoss { throw .connection("TLS with \(configuration) failed: \(Self.tlsReason(error.description))") }
                throw error
            }
            for reply in replies {
                if case .error(let text) = reply {
                    connection.close()
                    throw .connection("\(configuration) refused the login or database: \(text)")
                }
            }
        }
        return connection
    }

    /// What a failed handshake means, and what to do.
    static func tlsReason(_ text: String) -> String {
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's certificate is not trusted or does not name this host (give its CA with ?ca=FILE)"
        }
        if text.contains("CERTIFICATE_REQUIRED") || text.contains("HANDSHAKE_FAILURE") {
            return "Redis wants a client certificate it trusts (add ?cert=FILE&key=FILE)"
        }
        if text.contains("WRONG_VERSION_NUMBER") { return "the port does not speak TLS (use redis:// for it)" }
        return text
    }

    /// The TLS client context: the CA bundle (else the system's roots),
    /// full verification, the client certificate when given.
    static func context(_ tls: RedisConfiguration.TLS, for configuration: RedisConfiguration) throws(RedisError) -> NIOSSLContext {
        do {
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .fullVerification
            if let ca = tls.caFile { settings.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
            if let certificate = tls.certificateFile, let key = tls.keyFile {
                settings.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                settings.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
            return try NIOSSLContext(configuration: settings)
        } catch {
            throw .configuration("redis URL \(configuration): the TLS files cannot be used: \(error)")
        }
    }

    public var isActive: Bool { channel.isActive }

    public func close() { channel.close(promise: nil) }

    /// Sends one command; its reply, error replies included (`.error`).
    public func send(_ arguments: [String], timeout: Duration? = nil) async throws(RedisError) -> RESPValue {
        try await pipeline([arguments], timeout: timeout)[0]
    }

    /// Sends the commands in one write; their replies, in order.
    public func pipeline(_ commands: [[String]], timeout: Duration? = nil) async throws(RedisError) -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        let channel = self.channel
        var bytes = channel.allocator.buffer(capacity: 64 * commands.count)
        for command in commands { RESPEncoder.command(command, into: &bytes) }
        let promises = commands.map { _ in channel.eventLoop.makePromise(of: RESPValue.self) }
        let limit = timeout ?? configuration.commandTimeout
        // Named only when something fails (describing it on every call cost 1% of a queue client's CPU).
        let configuration = self.configuration
        let command = commands[0].first ?? ""
        // One hop onto the event loop per call: arm the timeout, write, and
        // disarm when the last reply is in. A promise completed twice keeps
        // its first result, so the timer and a failed write may fail
        // promises the handler also fails.
        let request = RESPRequest(bytes: bytes, promises: promises)
        channel.eventLoop.execute {
            let timer = channel.eventLoop.scheduleTask(in: .init(limit)) {
                let error = RedisError.timeout("\(configuration) did not answer \(command) within \(limit)")
                request.promises.forEach { $0.fail(error) }
                channel.pipeline.fireErrorCaught(error)
            }
            request.promises.last!.futureResult.whenComplete { _ in timer.cancel() }
            // A write to a closed channel never reaches the handler: fail its replies here.
            channel.writeAndFlush(request).whenFailure { error in
                let lost = error as? RedisError ?? .connection("lost the connection to \(configuration): \(Self.reason(error))")
                request.promises.forEach { $0.fail(lost) }
            }
        }
        var replies: [RESPValue] = []
        replies.reserveCapacity(promises.count)
        for promise in promises {
            do {
                replies.append(try await promise.futureResult.get())
            } catch let error as RedisError {
                throw error
            } catch {
                throw .connection("lost the connection to \(configuration): \(Self.reason(error))")
            }
        }
        return replies
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? RedisError { return error.description }
        if let error = error as? IOError { return error.description }
        if error is ChannelError { return "\(error)" }
        return String(describing: error)
    }
}

/// Commands to write and a promise per reply.
struct RESPRequest: Sendable {
    var bytes: ByteBuffer
    var promises: [EventLoopPromise<RESPValue>]
}

/// Matches replies to commands in order; fails all waiting commands when the
/// connection ends or breaks.
final class RESPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = ByteBuffer

    private let parser: RESPParser
    private var received: ByteBuffer?
    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()
    private var failure: RedisError?

    init(parser: RESPParser) { self.parser = parser }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            request.promises.forEach { $0.fail(failure) }
            promise?.fail(failure)
            return
        }
        waiting.append(contentsOf: request.promises)
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if received == nil { received = incoming } else { received!.writeBuffer(&incoming) }
        do {
            while let value = try parser.parse(&received!) {
                guard let promise = waiting.popFirst() else {
                    throw RedisError.protocolViolation("redis sent a reply nobody asked for")
                }
                promise.succeed(value)
            }
            if received!.readableBytes == 0 { received = nil } else { received!.discardReadBytes() }
        } catch let error as RESPParser.ProtocolError {
            fail(context: context, .protocolViolation(error.description))
        } catch {
            fail(context: context, error as? RedisError ?? .protocolViolation("\(error)"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(failure ?? .connection("redis closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, error as? RedisError ?? .connection("lost the connection to redis: \(RedisConnection.reason(error))"))
    }

    private func fail(context: ChannelHandlerContext, _ error: RedisError) {
        if failure == nil { failure = error }
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        if failure == nil { failure = error }
        while let promise = waiting.popFirst() { promise.fail(error) }
    }
}
