import Foundation
import Testing
@testable import YardArtifacts

/// AWS's published Signature Version 4 examples: the signing is ours, the
/// expected signatures are AWS's.
@Suite("SigV4 signer")
struct SigV4Tests {
    static let s3 = SigV4(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    static let may24 = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z

    static func signature(_ headers: [String: String]) -> String? {
        headers["Authorization"]?.components(separatedBy: "Signature=").last
    }

    @Test func testSuiteGetVanilla() {
        let signer = SigV4(accessKey: "AKIDEXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", service: "service")
        let headers = signer.sign(method: "GET", path: "/", query: [], headers: ["Host": "example.amazonaws.com"],
                                  payloadHash: SigV4.emptyPayloadHash, date: Date(timeIntervalSince1970: 1_440_938_160), setContentHash: false)
        #expect(headers["x-amz-date"] == "20150830T123600Z")
        #expect(headers["Authorization"] == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    @Test func s3GetObjectWithRange() {
        let headers = Self.s3.sign(method: "GET", path: "/test.txt", query: [],
                                   headers: ["Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9"],
                                   payloadHash: SigV4.emptyPayloadHash, date: Self.may24)
        #expect(headers["Authorization"]?.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date") == true)
        #expect(Self.signature(headers) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test func s3GetBucketLifecycle() {
        let headers = Self.s3.sign(method: "GET", path: "/", query: [("lifecycle", "")], headers: ["Host": "examplebucket.s3.amazonaws.com"],
                                   payloadHash: SigV4.emptyPayloadHash, date: Self.may24)
        #expect(Self.signature(headers) == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func s3ListObjects() {
        let headers = Self.s3.sign(method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")],
                                   headers: ["Host": "examplebucket.s3.amazonaws.com"], payloadHash: SigV4.emptyPayloadHash, date: Self.may24)
        #expect(Self.signature(headers) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func theEmptyPayloadHashIsLowercaseHex() {
        #expect(SigV4.emptyPayloadHash == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func pathsAndQueriesAreEncodedOnce() {
        #expect(SigV4.encodePath("/bucket/a b/ü+.txt") == "/bucket/a%20b/%C3%BC%2B.txt")
        #expect(SigV4.encode("a/b=c") == "a%2Fb%3Dc")
    }

    @Test func artifactKeysAreConfined() {
        for bad in ["", "/abs", "a/../b", "..", "a//b", "a/./b", "a\\b"] {
            #expect(throws: (any Error).self, "\(bad)") { try ArtifactKey.validate(bad) }
        }
        #expect(throws: Never.self) { try ArtifactKey.validate("job-1/weights/best.pt") }
    }

    @Test func xmlTextReadsS3Answers() {
        let xml = "<R><Contents><Key>a&amp;b.txt</Key><ETag>&quot;abc&quot;</ETag><Size>3</Size></Contents><Contents><Key>c</Key></Contents></R>"
        #expect(XMLText.all("Key", in: xml) == ["a&b.txt", "c"])
        #expect(XMLText.first("ETag", in: xml) == "\"abc\"")
        #expect(XMLText.first("Missing", in: xml) == nil)
    }
}
