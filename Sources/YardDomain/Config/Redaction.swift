import Foundation

/// Keeps secrets out of everything Trainyard stores, returns, logs or sends
/// to a tracker. A key is secret when its name says so (secret, password,
/// token, key, auth, ...); a value is secret when it looks like a credential
/// wherever it appears: a URL's `user:password@`, an `Authorization` scheme's
/// credentials (`Bearer …`), an AWS access key id, `password=…`.
/// `SecretMasker` adds the values of one job's secret fields.
public enum Redaction {
    public static let mask = "***"

    /// Substrings that make a key secret wherever they appear in its name.
    private static let secretMarkers = ["secret", "password", "passwd", "token", "apikey", "api_key", "credential",
                                        "private_key", "privatekey", "authorization", "passphrase"]
    /// Whole words (split at `_ - .` and camelCase) that make a key secret.
    private static let secretWords: Set<String> = ["key", "pwd", "pass", "auth", "cookie", "signature", "session", "sas"]

    public static func isSecretKey(_ key: String) -> Bool {
        let lower = key.lowercased()
        if secretMarkers.contains(where: { lower.contains($0) }) { return true }
        return words(of: key).contains { secretWords.contains($0) }
    }

    /// `MINIO_SECRET_KEY` → [minio, secret, key]; `apiKey` → [api, key].
    static func words(of key: String) -> [String] {
        var words: [String] = []
        var current = ""
        var previousLower = false
        for character in key {
            if !(character.isLetter || character.isNumber) {
                if !current.isEmpty { words.append(current) }
                current = ""
                previousLower = false
                continue
            }
            if character.isUppercase, previousLower, !current.isEmpty {
                words.append(current)
                current = ""
            }
            current.append(Character(character.lowercased()))
            previousLower = character.isLowercase || character.isNumber
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Whether the value at `path` is secret by where it is, whatever its
    /// key: a config's webhook URL (`notify: URL`, `notify.url`), whose path
    /// is the credential of hooks such as Slack's.
    static func isSecretPath(_ path: [String]) -> Bool {
        path == ["notify"] || path == ["notify", "url"]
    }

    /// The value with every secret replaced by `***`.
    public static func redact(_ value: JSONValue) -> JSONValue { redact(value, path: []) }

    private static func redact(_ value: JSONValue, path: [String]) -> JSONValue {
        switch value {
        case .object(let object):
            var out: [String: JSONValue] = [:]
            for (key, child) in object {
                let secret = isSecretKey(key) || (isSecretPath(path + [key]) && child.stringValue != nil)
                out[key] = secret && child != .null ? .string(mask) : redact(child, path: path + [key])
            }
            return .object(out)
        case .array(let items):
            return .array(items.enumerated().map { redact($1, path: path + ["[\($0)]"]) })
        case .string(let s):
            return .string(redactText(s))
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
                    if (isSecretKey(key) || (isSecretPath(p) && child.stringValue != nil)) && child != .null {
                        found[p.joined(separator: "\u{1F}")] = child
                    }
                    else { walk(child, p) }
                }
            case .array(let items):
                for (i, child) in items.enumerated() { walk(child, path + ["[\(i)]"]) }
            case .string(let s) where redactText(s) != s:
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

    /// Text with every credential-looking part masked: URL passwords,
    /// `Bearer`/`Basic`/`Token` credentials, AWS access key ids, and the
    /// value of `password=…`, `"api_key": "…"` and the like.
    public static func redactText(_ text: String) -> String {
        var result = text
        if result.contains("://") {
            result = result.split(separator: " ", omittingEmptySubsequences: false)
                .map { redactURLCredentials(String($0)) }.joined(separator: " ")
        }
        let lower = result.lowercased()
        if lower.contains("bearer") || lower.contains("basic") || lower.contains("token") {
            result = replace(schemeCredentials, in: result, template: "$1\(mask)")
        }
        if result.contains("AKIA") || result.contains("ASIA") || result.contains("ABIA") || result.contains("ACCA") {
            result = replace(awsAccessKeyID, in: result, template: mask)
        }
        if result.contains("=") || result.contains(":") {
            let lower = result.lowercased()
            if secretMarkers.contains(where: { lower.contains($0) }) || lower.contains("key") {
                result = replace(secretAssignment, in: result, template: "$1$2\(mask)")
            }
        }
        return result
    }

    nonisolated(unsafe) private static let schemeCredentials = try! NSRegularExpression(
        pattern: #"(\b(?:bearer|basic|token)\s+)(?!\*\*\*)[A-Za-z0-9._~+/=-]{6,}"#, options: [.caseInsensitive])
    nonisolated(unsafe) private static let awsAccessKeyID = try! NSRegularExpression(
        pattern: #"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"#)
    nonisolated(unsafe) private static let secretAssignment = try! NSRegularExpression(
        pattern: #"((?:^|[^A-Za-z0-9])["']?[A-Za-z0-9_.-]*(?:secret|password|passwd|token|api[_-]?key|access[_-]?key|private[_-]?key)[A-Za-z0-9_.-]*["']?)(\s*[=:]\s*["']?)(?!\*\*\*)([^\s"'&,;}]+)"#,
        options: [.caseInsensitive])

    private static func replace(_ pattern: NSRegularExpression, in text: String, template: String) -> String {
        pattern.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: template)
    }
}

/// Masks one job's secrets wherever they are echoed: every value that came
/// from a secret field of its config (and a URL's password on its own), plus
/// whatever `Redaction.redactText` recognises as a credential. Values shorter
/// than 4 characters are left to the patterns (masking every "ab" in a log
/// would hide more than it protects).
public struct SecretMasker: Sendable {
    let values: [String]

    public init(secrets: [String: JSONValue]) {
        var found: Set<String> = []
        func collect(_ value: JSONValue) {
            switch value {
            case .string(let s):
                found.insert(s)
                if let password = Self.urlPassword(s) { found.insert(password) }
                for word in s.split(separator: " ") where word.count >= 8 { found.insert(String(word)) }
            case .int(let i): found.insert(String(i))
            case .double(let d): found.insert(String(d))
            case .array(let items): items.forEach(collect)
            case .object(let object): object.values.forEach(collect)
            default: break
            }
        }
        secrets.values.forEach(collect)
        values = found.filter { $0.count >= 4 }.sorted { $0.count > $1.count }
    }

    public func mask(_ text: String) -> String {
        var result = Redaction.redactText(text)
        for value in values where result.contains(value) {
            result = result.replacingOccurrences(of: value, with: Redaction.mask)
        }
        return result
    }

    public func mask(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): .string(mask(s))
        case .array(let items): .array(items.map(mask))
        case .object(let object): .object(object.mapValues(mask))
        default: value
        }
    }

    private static func urlPassword(_ text: String) -> String? {
        guard let schemeEnd = text.range(of: "://") else { return nil }
        let rest = text[schemeEnd.upperBound...]
        guard let at = rest.firstIndex(of: "@"), let colon = rest[..<at].firstIndex(of: ":") else { return nil }
        let password = rest[rest.index(after: colon)..<at]
        return password.isEmpty ? nil : String(password)
    }
}
