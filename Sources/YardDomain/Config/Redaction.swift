/// Keeps secrets out of everything Trainyard stores, returns, logs or sends
/// to a tracker. A key is secret when its name says so (secret, password,
/// token, ...); a URL's `user:password@` part is secret wherever it appears.
public enum Redaction {
    public static let mask = "***"

    private static let secretMarkers = ["secret", "password", "passwd", "token", "api_key", "apikey", "credential", "private_key"]

    public static func isSecretKey(_ key: String) -> Bool {
        let lower = key.lowercased()
        return secretMarkers.contains { lower.contains($0) }
    }

    /// The value with every secret replaced by `***`.
    public static func redact(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let object):
            var out: [String: JSONValue] = [:]
            for (key, child) in object {
                out[key] = isSecretKey(key) && child != .null ? .string(mask) : redact(child)
            }
            return .object(out)
        case .array(let items):
            return .array(items.map(redact))
        case .string(let s):
            return .string(redactURLCredentials(s))
        default:
            return value
        }
    }

    /// Only the secret values, at their paths, so a worker can put them back.
    public static func secrets(of value: JSONValue) -> [String: JSONValue] {
        var found: [String: JSONValue] = [:]
        func walk(_ v: JSONValue, _ path: [String]) {
            switch v {
            case .object(let object):
                for (key, child) in object {
                    let p = path + [key]
                    if isSecretKey(key) && child != .null { found[p.joined(separator: "\u{1F}")] = child }
                    else { walk(child, p) }
                }
            case .array(let items):
                for (i, child) in items.enumerated() { walk(child, path + ["[\(i)]"]) }
            case .string(let s) where redactURLCredentials(s) != s:
                found[path.joined(separator: "\u{1F}")] = v
            default: break
            }
        }
        walk(value, [])
        return found
    }

    /// Puts secrets found by `secrets(of:)` back into a redacted value.
    public static func restore(_ value: JSONValue, secrets: [String: JSONValue]) -> JSONValue {
        var result = value
        for (joined, secret) in secrets {
            result = set(result, path: joined.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init)[...], to: secret)
        }
        return result
    }

    private static func set(_ value: JSONValue, path: ArraySlice<String>, to newValue: JSONValue) -> JSONValue {
        guard let key = path.first else { return newValue }
        if key.hasPrefix("["), key.hasSuffix("]"), let i = Int(key.dropFirst().dropLast()),
           case .array(var items) = value, items.indices.contains(i) {
            items[i] = set(items[i], path: path.dropFirst(), to: newValue)
            return .array(items)
        }
        guard case .object(var object) = value, let child = object[key] else { return value }
        object[key] = set(child, path: path.dropFirst(), to: newValue)
        return .object(object)
    }

    /// `scheme://user:pass@host` → `scheme://user:***@host`; other text is unchanged.
    public static func redactURLCredentials(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return text }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return text }
        let userInfo = authority[..<at]
        let user = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let masked = userInfo.contains(":") ? "\(user):\(mask)" : mask
        return String(text[..<schemeEnd.upperBound]) + masked + String(authority[at...]) + String(rest[authorityEnd...])
    }

    /// A log line with any `key=secret`-looking credentials in URLs masked.
    public static func redactLine(_ line: String) -> String {
        guard line.contains("://") else { return line }
        return line.split(separator: " ", omittingEmptySubsequences: false)
            .map { redactURLCredentials(String($0)) }.joined(separator: " ")
    }
}
