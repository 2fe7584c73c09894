import Crypto
import Foundation
import YardDomain

/// AWS Signature Version 4 for S3 and S3-compatible servers (MinIO, moto),
/// written from AWS's description of the algorithm: a canonical request, a
/// string to sign over its hash, and an HMAC chain that derives the signing
/// key from the secret, the date, the region and the service.
public struct SigV4: Sendable {
    public var accessKey: String
    public var secretKey: String
    public var region: String
    public var service: String

    public init(accessKey: String, secretKey: String, region: String = "us-east-1", service: String = "s3") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.service = service
    }

    public static let emptyPayloadHash = SHA256.hash(data: Data()).hex

    /// The headers to add to a request: `x-amz-date`, `x-amz-content-sha256`
    /// (when `setContentHash`) and `Authorization`. `headers` must include
    /// `host`; names are case-insensitive.
    public func sign(method: String, path: String, query: [(String, String)], headers: [String: String],
                     payloadHash: String, date: Date, setContentHash: Bool = true) -> [String: String] {
        let (amzDate, day) = Self.timestamps(date)
        var all = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { _, last in last })
        all["x-amz-date"] = amzDate
        if setContentHash { all["x-amz-content-sha256"] = payloadHash }
        let signed = all.keys.sorted()
        let canonical = canonicalRequest(method: method, path: path, query: query, headers: all, signedHeaders: signed, payloadHash: payloadHash)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(SHA256.hash(data: Data(canonical.utf8)).hex)"
        let signature = HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: signingKey(day: day)).hex
        var out: [String: String] = ["x-amz-date": amzDate]
        if setContentHash { out["x-amz-content-sha256"] = payloadHash }
        out["Authorization"] = "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(signed.joined(separator: ";")), Signature=\(signature)"
        return out
    }

    func canonicalRequest(method: String, path: String, query: [(String, String)], headers: [String: String],
                          signedHeaders: [String], payloadHash: String) -> String {
        let encoded: [(name: String, value: String)] = query.map { (Self.encode($0.0), Self.encode($0.1)) }
        let sorted = encoded.sorted { (a: (name: String, value: String), b: (name: String, value: String)) -> Bool in
            a.name == b.name ? a.value < b.value : a.name < b.name
        }
        let canonicalQuery = sorted.map { (pair: (name: String, value: String)) -> String in pair.name + "=" + pair.value }
            .joined(separator: "&")
        let canonicalHeaders = signedHeaders.map { name in
            "\(name):\(Self.trimAll(headers[name] ?? ""))\n"
        }.joined()
        return [method, Self.encodePath(path), canonicalQuery, canonicalHeaders, signedHeaders.joined(separator: ";"), payloadHash]
            .joined(separator: "\n")
    }

    func signingKey(day: String) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ text: String) -> SymmetricKey {
            SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key)))
        }
        var key = SymmetricKey(data: Data("AWS4\(secretKey)".utf8))
        for part in [day, region, service, "aws4_request"] { key = hmac(key, part) }
        return key
    }

    /// `20130524T000000Z` and `20130524`, in UTC.
    static func timestamps(_ date: Date) -> (String, String) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let day = String(format: "%04d%02d%02d", c.year!, c.month!, c.day!)
        return (day + String(format: "T%02d%02d%02dZ", c.hour!, c.minute!, c.second!), day)
    }

    /// RFC 3986 unreserved characters stay; everything else is %XX (uppercase).
    static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(UnicodeScalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == "." || c == "~" || (keepSlash && c == "/")) {
                out.append(c)
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// S3 paths are encoded once, keeping `/`.
    static func encodePath(_ path: String) -> String { encode(path.isEmpty ? "/" : path, keepSlash: true) }

    static func trimAll(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }
}
