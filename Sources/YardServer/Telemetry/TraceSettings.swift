import Foundation
import YardDomain

/// Where traces go: OpenTelemetry's own environment variables, read once at
/// start. Unset (`OTEL_EXPORTER_OTLP_ENDPOINT` and
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` both empty), tracing is off and
/// nothing is built for it: no follower, no span, no buffer.
///
/// - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the URL spans are POSTed to, as
///   given; else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`.
/// - `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`: `key=value,key=value` (URL
///   encoded), sent with each export; never logged.
/// - `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`: only `http/json` is spoken
///   (the Collector, Jaeger and Tempo all take it on port 4318); another
///   value is refused at start in one line rather than sending what the
///   collector cannot read.
/// - `OTEL_SERVICE_NAME` (default `trainyard`); `OTEL_SDK_DISABLED=true` or
///   `OTEL_TRACES_EXPORTER=none` turn tracing off.
public struct TraceSettings: Sendable, Hashable {
    public var endpoint: URL
    public var headers: [String: String]
    public var serviceName: String
    /// How long one export may take before it is given up (its spans dropped).
    public var timeout: Duration = .seconds(5)
    /// How often the buffer is sent when it is not full.
    public var interval: Duration = .seconds(1)
    /// The most spans waiting; beyond it the oldest are dropped (counted).
    public var capacity = 4096

    public init(endpoint: URL, headers: [String: String] = [:], serviceName: String = "trainyard") {
        self.endpoint = endpoint
        self.headers = headers
        self.serviceName = serviceName
    }

    /// The settings the environment asks for, nil when tracing is off, or a
    /// one-line error naming the variable.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(YardError) -> TraceSettings? {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0.trimmingCharacters(in: .whitespaces) } }
        if value("OTEL_SDK_DISABLED")?.lowercased() == "true" || value("OTEL_TRACES_EXPORTER")?.lowercased() == "none" { return nil }
        let endpointName: String, endpointText: String
        if let traces = value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            (endpointName, endpointText) = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces)
        } else if let base = value("OTEL_EXPORTER_OTLP_ENDPOINT") {
            (endpointName, endpointText) = ("OTEL_EXPORTER_OTLP_ENDPOINT", (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/v1/traces")
        } else {
            return nil
        }
        guard let url = URL(string: endpointText), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty else {
            throw YardError.invalid(endpointName, "\"\(endpointText.prefix(80))\" is not an http(s) URL; give e.g. http://collector:4318")
        }
        for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let proto = value(name) {
                guard proto.lowercased() == "http/json" else {
                    throw YardError.invalid(name, "\"\(proto.prefix(40))\": Trainyard exports traces as http/json only; set it to http/json (collectors take it on port 4318)")
                }
                break
            }
        }
        var settings = TraceSettings(endpoint: url, serviceName: value("OTEL_SERVICE_NAME") ?? "trainyard")
        let headersName = value("OTEL_EXPORTER_OTLP_TRACES_HEADERS") != nil ? "OTEL_EXPORTER_OTLP_TRACES_HEADERS" : "OTEL_EXPORTER_OTLP_HEADERS"
        if let text = value(headersName) {
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                let key = parts.first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                guard parts.count == 2, !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }),
                      let decoded = parts[1].trimmingCharacters(in: .whitespaces).removingPercentEncoding,
                      // Scalars, not Characters: "\r\n" is one Character and would slip past.
                      !decoded.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    // The value may be a secret: the message names the key alone.
                    throw YardError.invalid(headersName, "an entry is not key=value (key \"\(key.prefix(40))\"); give e.g. authorization=Bearer%20TOKEN,x-scope=team")
                }
                settings.headers[key] = decoded
            }
        }
        return settings
    }
}
