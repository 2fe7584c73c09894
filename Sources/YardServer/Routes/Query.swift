import Foundation
import Hummingbird
import YardDomain

/// Query parameters read strictly: a value that is present but not what the
/// route accepts is a 400 naming the parameter, never silently coerced.
enum Query {
    static func int(_ request: Request, _ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let raw = request.uri.queryParameters.get(name) else { return nil }
        guard let value = Int(raw), range.contains(value) else {
            let bounds = range.upperBound == Int.max ? "at least \(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
            throw YardError.invalid(name, "must be an integer, \(bounds), got \"\(raw.prefix(40))\"")
        }
        return value
    }

    static func bool(_ request: Request, _ name: String) throws -> Bool? {
        guard let raw = request.uri.queryParameters.get(name) else { return nil }
        switch raw.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw YardError.invalid(name, "must be true or false, got \"\(raw.prefix(40))\"")
        }
    }
}

extension Query {
    /// A text parameter as browsers and HTTP clients encode a query
    /// (application/x-www-form-urlencoded: `+` is a space, `%2B` a plus).
    /// Hummingbird's `queryParameters` decodes `%XX` only, after which a `+`
    /// that meant a space and one that meant a plus cannot be told apart: the
    /// raw query is read here. The first value of `name`; nil when absent.
    static func string(_ request: Request, _ name: String) -> String? {
        guard let raw = request.uri.query else { return nil }
        for pair in raw.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard formDecoded(parts[0]) == name else { continue }
            return parts.count > 1 ? formDecoded(parts[1]) : ""
        }
        return nil
    }

    /// `+` as a space, then `%XX`; text that is not valid percent-encoding is kept as sent.
    static func formDecoded(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    static func double(_ request: Request, _ name: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let raw = request.uri.queryParameters.get(name) else { return nil }
        guard let value = Double(raw), value.isFinite, range.contains(value) else {
            throw YardError.invalid(name, "must be a number from \(range.lowerBound) to \(range.upperBound), got \"\(raw.prefix(40))\"")
        }
        return value
    }

    /// A comma-separated list of integers in `range` (`classes=0,2`).
    static func ints(_ request: Request, _ name: String, in range: ClosedRange<Int>) throws -> [Int]? {
        guard let raw = request.uri.queryParameters.get(name) else { return nil }
        let parts = raw.split(separator: ",", omittingEmptySubsequences: false)
        let values = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.count <= 1000, values.count == parts.count, values.allSatisfy(range.contains) else {
            throw YardError.invalid(name, "must be comma-separated integers from \(range.lowerBound) to \(range.upperBound), got \"\(raw.prefix(40))\"")
        }
        return values
    }
}
