/// The error every Trainyard library throws at its edge: a stable code, the
/// field or file it is about, and a one-line message that says what to do.
/// The server maps codes to HTTP statuses in one place; the CLI prints
/// `message` and exits non-zero.
public struct YardError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }
        public var description: String { raw }

        /// The input (a config, a request) is wrong; the message names the field.
        public static let invalidInput = Code("invalid_input")
        /// No such job, file or thing.
        public static let notFound = Code("not_found")
        /// The thing exists but cannot do that now (an illegal state transition).
        public static let conflict = Code("conflict")
        /// The request body (an upload, an image) is over its limit.
        public static let tooLarge = Code("too_large")
        /// The request's content type is not one the route takes.
        public static let unsupportedMediaType = Code("unsupported_media_type")
        /// Missing or wrong credentials.
        public static let unauthorized = Code("unauthorized")
        /// Known credentials whose role may not do that (the message names the role).
        public static let forbidden = Code("forbidden")
        /// Something outside us failed (the engine, the disk, a server).
        public static let unavailable = Code("unavailable")
        /// A bug or an unexpected condition.
        public static let `internal` = Code("internal")
    }

    public let code: Code
    public let field: String?
    public let message: String

    public init(_ code: Code, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public static func invalid(_ field: String, _ message: String) -> YardError {
        YardError(.invalidInput, field: field, "\(field): \(message)")
    }

    public var description: String { message }
}
