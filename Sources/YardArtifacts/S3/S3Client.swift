import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import YardDomain

/// A small S3 client (path-style addressing, SigV4) for S3, MinIO and moto:
/// put (multipart above `partSize`), get with checksum verification, head,
/// list and bucket creation.
public struct S3Client: Sendable {
    public struct Object: Sendable, Hashable {
        public var key: String
        public var etag: String
        public var size: Int64
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let status: Int
        public let code: String
        public let message: String
        public var description: String { "S3 \(status) \(code): \(message)" }
    }

    let endpoint: URLComponents
    let signer: SigV4
    let http: HTTPClient
    /// Files larger than this are sent as a multipart upload of parts this big.
    public var partSize: Int
    /// Waits between tries when the endpoint cannot be reached; with the
    /// client's connect timeout they bound how long a dead endpoint holds a job.
    public var retryBackoff: [Duration] = [.milliseconds(500), .seconds(1), .seconds(2)]

    /// Connects within 3 s (an unreachable endpoint fails fast and is retried
    /// with backoff); a transfer may take as long as it needs while bytes flow.
    public static let defaultHTTP = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
        timeout: .init(connect: .seconds(3), read: .seconds(120))))

    public init(endpoint: String, accessKey: String, secretKey: String, region: String = "us-east-1",
                partSize: Int = 16 << 20, http: HTTPClient = S3Client.defaultHTTP) throws {
        guard let components = URLComponents(string: endpoint), components.host != nil,
              components.scheme == "http" || components.scheme == "https" else {
            throw YardError.invalid("minio.MINIO_ENDPOINT", "must be an http(s) URL such as http://127.0.0.1:9000")
        }
        self.endpoint = components
        self.signer = SigV4(accessKey: accessKey, secretKey: secretKey, region: region)
        self.http = http
        self.partSize = max(partSize, 5 << 20)
    }

    var hostHeader: String {
        endpoint.port.map { "\(endpoint.host!):\($0)" } ?? endpoint.host!
    }

    // MARK: operations

    public func createBucket(_ bucket: String) async throws {
        do { _ = try await send("PUT", bucket: bucket, key: nil) } catch let failure as Failure
            where failure.code == "BucketAlreadyOwnedByYou" || failure.code == "BucketAlreadyExists" {}
    }

    /// Uploads a file; returns its size. Stores its sha256 as object metadata
    /// so a download can verify it whole.
    @discardableResult
    public func putFile(_ path: String, bucket: String, key: String) async throws -> Int64 {
        let size = try Self.fileSize(path)
        let sha = try FileDigest.sha256(of: path)
        if size <= Int64(partSize) {
            let data = FileManager.default.contents(atPath: path) ?? Data()
            let md5 = Data(Insecure.MD5.hash(data: data)).base64EncodedString()
            _ = try await send("PUT", bucket: bucket, key: key, headers: ["x-amz-meta-sha256": sha, "content-md5": md5],
                               body: ByteBuffer(bytes: data))
            return size
        }
        try await multipartUpload(path, bucket: bucket, key: key, sha: sha)
        return size
    }

    private func multipartUpload(_ path: String, bucket: String, key: String, sha: String) async throws {
        let created = try await send("POST", bucket: bucket, key: key, query: [("uploads", "")], headers: ["x-amz-meta-sha256": sha])
        guard let uploadID = XMLText.first("UploadId", in: String(buffer: created.body)) else {
            throw Failure(status: 0, code: "BadResponse", message: "no UploadId in CreateMultipartUpload's answer")
        }
        do {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw YardError(.notFound, field: path, "cannot read \(path)") }
            defer { try? handle.close() }
            var parts: [(Int, String)] = []
            var number = 1
            while let chunk = try handle.read(upToCount: partSize), !chunk.isEmpty {
                let md5 = Data(Insecure.MD5.hash(data: chunk)).base64EncodedString()
                let response = try await send("PUT", bucket: bucket, key: key,
                                              query: [("partNumber", String(number)), ("uploadId", uploadID)],
                                              headers: ["content-md5": md5], body: ByteBuffer(bytes: chunk))
                guard let etag = response.headers.first(name: "etag") else {
                    throw Failure(status: 0, code: "BadResponse", message: "UploadPart \(number) returned no ETag")
                }
                parts.append((number, etag))
                number += 1
            }
            let xml = "<CompleteMultipartUpload>" + parts.map {
                "<Part><PartNumber>\($0.0)</PartNumber><ETag>\(XMLText.escape($0.1))</ETag></Part>"
            }.joined() + "</CompleteMultipartUpload>"
            let done = try await send("POST", bucket: bucket, key: key, query: [("uploadId", uploadID)], body: ByteBuffer(string: xml))
            // CompleteMultipartUpload can fail inside a 200.
            if let code = XMLText.first("Code", in: String(buffer: done.body)) {
                throw Failure(status: 200, code: code, message: XMLText.first("Message", in: String(buffer: done.body)) ?? "")
            }
        } catch {
            _ = try? await send("DELETE", bucket: bucket, key: key, query: [("uploadId", uploadID)])
            throw error
        }
    }

    /// Downloads to `path` (whole or not at all) and verifies the bytes: the
    /// sha256 we stored as metadata, else the MD5 a single-part ETag is.
    public func getFile(bucket: String, key: String, to path: String) async throws {
        let url = try self.url(bucket: bucket, key: key, query: [])
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        for (name, value) in signedHeaders(method: "GET", bucket: bucket, key: key, query: [], headers: [:], payloadHash: SigV4.emptyPayloadHash) {
            request.headers.add(name: name, value: value)
        }
        let response = try await execute(request, timeout: .seconds(3600))
        guard response.status.code < 300 else {
            throw Self.failure(response.status, try await response.body.collect(upTo: 1 << 20))
        }
        let folder = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try await AtomicFile.write(to: path, permissions: 0o644) { handle in
            var sha = SHA256()
            var md5 = Insecure.MD5()
            for try await chunk in response.body {
                let data = Data(chunk.readableBytesView)
                sha.update(data: data)
                md5.update(data: data)
                try handle.write(contentsOf: data)
            }
            let expectedSHA = response.headers.first(name: "x-amz-meta-sha256")
            let etag = (response.headers.first(name: "etag") ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            if let expectedSHA, sha.finalize().hex != expectedSHA {
                throw YardError(.unavailable, field: key, "s3://\(bucket)/\(key): downloaded bytes do not match their sha256; try again")
            }
            if expectedSHA == nil, etag.count == 32, !etag.contains("-"), md5.finalize().hex != etag {
                throw YardError(.unavailable, field: key, "s3://\(bucket)/\(key): downloaded bytes do not match their ETag (MD5); try again")
            }
        }
    }

    /// Size and ETag, or nil when there is no such object.
    public func head(bucket: String, key: String) async throws -> Object? {
        do {
            let response = try await send("HEAD", bucket: bucket, key: key)
            let etag = (response.headers.first(name: "etag") ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            return Object(key: key, etag: etag, size: Int64(response.headers.first(name: "content-length") ?? "") ?? 0)
        } catch let failure as Failure where failure.status == 404 {
            return nil
        }
    }

    /// Every object under a prefix (ListObjectsV2, following continuation tokens).
    public func list(bucket: String, prefix: String) async throws -> [Object] {
        var objects: [Object] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")]
            if let token { query.append(("continuation-token", token)) }
            let xml = String(buffer: try await send("GET", bucket: bucket, key: nil, query: query).body)
            for block in XMLText.all("Contents", in: xml) {
                guard let key = XMLText.first("Key", in: block) else { continue }
                let etag = (XMLText.first("ETag", in: block) ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                objects.append(Object(key: key, etag: etag, size: Int64(XMLText.first("Size", in: block) ?? "") ?? 0))
            }
            token = XMLText.first("IsTruncated", in: xml) == "true" ? XMLText.first("NextContinuationToken", in: xml) : nil
        } while token != nil
        return objects
    }

    // MARK: transport

    struct Answer {
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    func url(bucket: String, key: String?, query: [(String, String)]) throws -> String {
        var path = "/" + bucket
        if let key { path += "/" + key }
        var text = "\(endpoint.scheme!)://\(hostHeader)" + SigV4.encodePath(path)
        if !query.isEmpty {
            text += "?" + query.map { $0.1.isEmpty && $0.0 == "uploads" ? "uploads=" : "\(SigV4.encode($0.0))=\(SigV4.encode($0.1))" }.joined(separator: "&")
        }
        return text
    }

    func signedHeaders(method: String, bucket: String, key: String?, query: [(String, String)], headers: [String: String],
                       payloadHash: String) -> [String: String] {
        var path = "/" + bucket
        if let key { path += "/" + key }
        var all = headers
        all["host"] = hostHeader
        var out = all
        for (k, v) in signer.sign(method: method, path: path, query: query, headers: all, payloadHash: payloadHash, date: Date()) { out[k] = v }
        return out
    }

    func send(_ method: String, bucket: String, key: String?, query: [(String, String)] = [], headers: [String: String] = [:],
              body: ByteBuffer? = nil) async throws -> Answer {
        let payloadHash = body.map { SHA256.hash(data: Data($0.readableBytesView)).hex } ?? SigV4.emptyPayloadHash
        var request = HTTPClientRequest(url: try url(bucket: bucket, key: key, query: query))
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in signedHeaders(method: method, bucket: bucket, key: key, query: query, headers: headers, payloadHash: payloadHash) {
            request.headers.add(name: name, value: value)
        }
        if let body { request.body = .bytes(body) }
        let response = try await execute(request, timeout: .seconds(600))
        let data = try await response.body.collect(upTo: 16 << 20)
        guard response.status.code < 300 else { throw Self.failure(response.status, data) }
        return Answer(headers: response.headers, body: data)
    }

    /// Sends a request (its body must be replayable), retrying while the
    /// endpoint cannot be reached; the last error names the endpoint and the tries.
    func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        let clock = ContinuousClock()
        let start = clock.now
        var waits = retryBackoff[...]
        var tries = 0
        while true {
            tries += 1
            do {
                return try await http.execute(request, timeout: timeout)
            } catch {
                guard let wait = waits.popFirst(), !Task.isCancelled else {
                    let spent = (clock.now - start).components.seconds
                    throw YardError(.unavailable, field: "minio.MINIO_ENDPOINT",
                                    "cannot reach S3 at \(hostHeader) (\(tries) tries over \(spent) s): \(error); check minio.MINIO_ENDPOINT and that the server is up")
                }
                try await Task.sleep(for: wait)
            }
        }
    }

    static func failure(_ status: HTTPResponseStatus, _ body: ByteBuffer) -> Failure {
        let xml = String(buffer: body)
        return Failure(status: Int(status.code), code: XMLText.first("Code", in: xml) ?? "HTTP\(status.code)",
                       message: XMLText.first("Message", in: xml) ?? status.reasonPhrase)
    }

    static func fileSize(_ path: String) throws -> Int64 {
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber else {
            throw YardError(.notFound, field: path, "cannot read \(path)")
        }
        return size.int64Value
    }
}

/// Just enough XML for S3's answers: the text of elements by name.
enum XMLText {
    static func all(_ tag: String, in xml: String) -> [String] {
        var out: [String] = []
        var rest = xml[...]
        while let open = rest.range(of: "<\(tag)>"), let close = rest.range(of: "</\(tag)>", range: open.upperBound..<rest.endIndex) {
            out.append(unescape(String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return out
    }

    static func first(_ tag: String, in xml: String) -> String? { all(tag, in: xml).first }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&#34;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
