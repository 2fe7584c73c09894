import Crypto
import Hummingbird
import HTTPTypes
import Foundation
import YardDomain

/// One finished span, as OpenTelemetry's OTLP carries it. Ids are lowercase
/// hex (32 digits for a trace, 16 for a span), as OTLP/JSON spells them.
public struct TraceSpan: Sendable, Hashable {
    public enum Kind: Int, Sendable { case `internal` = 1, server = 2 }

    public var traceID: String
    public var spanID: String
    public var parentID: String?
    public var name: String
    public var kind: Kind
    public var start: Date
    public var end: Date
    /// Values are strings, integers, doubles or booleans (OTLP's AnyValue scalars).
    public var attributes: [String: JSONValue]
    /// Set: the span failed, with this message (OTLP status code ERROR).
    public var error: String?

    public init(traceID: String, spanID: String, parentID: String? = nil, name: String, kind: Kind = .internal,
                start: Date, end: Date, attributes: [String: JSONValue] = [:], error: String? = nil) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentID = parentID
        self.name = name
        self.kind = kind
        self.start = start
        self.end = max(start, end)
        self.attributes = attributes
        self.error = error
    }

    /// Ids derived from a name: the same job's spans get the same ids each
    /// time they are made (a follower that reads the log again after a
    /// restart sends the same spans, not new ones).
    public static func traceID(for name: String) -> String { String(SHA256.hash(data: Data(("trace:" + name).utf8)).hex.prefix(32)) }
    public static func spanID(for name: String) -> String { String(SHA256.hash(data: Data(("span:" + name).utf8)).hex.prefix(16)) }

    /// Fresh random ids (a predict request's).
    public static func randomTraceID() -> String { randomHex(bytes: 16) }
    public static func randomSpanID() -> String { randomHex(bytes: 8) }

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        while true {
            let hex = (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
            if hex.contains(where: { $0 != "0" }) { return hex }  // all zeros is the invalid id
        }
    }

    /// A W3C `traceparent` header (`00-TRACE-SPAN-FLAGS`): the caller's trace
    /// and span, or nil when it is absent or malformed (then a new trace starts).
    public static func parent(fromTraceparent header: String?) -> (trace: String, span: String)? {
        guard let header else { return nil }
        let parts = header.trimmingCharacters(in: .whitespaces).lowercased().split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].count == 2, parts[0] != "ff", parts[1].count == 32, parts[2].count == 16, parts[3].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isHexDigit) }),
              parts[1].contains(where: { $0 != "0" }), parts[2].contains(where: { $0 != "0" }) else { return nil }
        return (String(parts[1]), String(parts[2]))
    }

    /// OTLP/JSON (`Span` of opentelemetry-proto's trace.proto).
    var otlp: JSONValue {
        var span: [String: JSONValue] = [
            "traceId": .string(traceID), "spanId": .string(spanID), "name": .string(name), "kind": .int(kind.rawValue),
            // fixed64 in proto3's JSON mapping: a decimal string.
            "startTimeUnixNano": .string(Self.nanoseconds(start)), "endTimeUnixNano": .string(Self.nanoseconds(end)),
            "attributes": .array(attributes.sorted { $0.key < $1.key }.compactMap { key, value in
                Self.anyValue(value).map { JSONValue.object(["key": .string(key), "value": $0]) }
            }),
            "status": error.map { .object(["code": .int(2), "message": .string(String($0.prefix(500)))]) } ?? .object(["code": .int(1)]),
        ]
        if let parentID { span["parentSpanId"] = .string(parentID) }
        return .object(span)
    }

    static func nanoseconds(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        return String(UInt64(max(0, seconds.rounded(.down))) * 1_000_000_000 + UInt64(max(0, (seconds - seconds.rounded(.down)) * 1e9)))
    }

    static func anyValue(_ value: JSONValue) -> JSONValue? {
        switch value {
        case .string(let text): return .object(["stringValue": .string(text)])
        case .bool(let flag): return .object(["boolValue": .bool(flag)])
        case .int(let number): return .object(["intValue": .string(String(number))])  // int64: a decimal string
        case .double(let number): return number.isFinite ? .object(["doubleValue": .double(number)]) : nil
        default: return nil
        }
    }
}

/// A predict request's span, begun when the request arrives: a server span
/// continuing the caller's W3C `traceparent` when it sends a valid one.
struct PredictSpan: Sendable {
    let traceID: String
    let spanID = TraceSpan.randomSpanID()
    let parentID: String?
    let start = Date()
    let runtime: String?

    init(_ request: Request) {
        let parent = TraceSpan.parent(fromTraceparent: request.headers[HTTPField.Name("traceparent")!])
        traceID = parent?.trace ?? TraceSpan.randomTraceID()
        parentID = parent?.span
        runtime = request.uri.queryParameters["runtime"].map(String.init)
    }

    /// Labels are the registry's names only (`_unknown` before the version
    /// resolved), as on `/metrics`: never the raw path.
    func finished(model: String, version: String, status: Int, images: Int, error: String?) -> TraceSpan {
        var attributes: [String: JSONValue] = [
            "http.request.method": "POST", "http.route": "/api/predict/{name}", "http.response.status_code": .int(status),
            "trainyard.model": .string(model), "trainyard.images": .int(images),
            "trainyard.runtime": .string(runtime == "onnx" ? "onnx" : "torch"),
        ]
        if !version.isEmpty { attributes["trainyard.model.version"] = .string(version) }
        return TraceSpan(traceID: traceID, spanID: spanID, parentID: parentID, name: "POST /api/predict/{name}", kind: .server,
                         start: start, end: Date(), attributes: attributes, error: error)
    }
}
