import Foundation
import Testing
import YardDomain

@Suite("File digest")
struct FileDigestTests {
    /// Known digests (sha256sum's), across the 1 MB read size; a missing
    /// file is a one-line `notFound` naming it.
    @Test func aFilesDigestIsSHA256OfItsBytesWhateverItsSize() throws {
        let dir = NSTemporaryDirectory() + "/yard-digest-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: dir + "/empty", contents: Data())
        FileManager.default.createFile(atPath: dir + "/abc", contents: Data("abc".utf8))
        FileManager.default.createFile(atPath: dir + "/big", contents: Data(repeating: 0x61, count: (1 << 20) + 1))
        #expect(try FileDigest.sha256(of: dir + "/empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(try FileDigest.sha256(of: dir + "/abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let big = Process()
        big.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        big.arguments = [dir + "/big"]
        let out = Pipe()
        big.standardOutput = out
        try big.run()
        big.waitUntilExit()
        let expected = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
        #expect(try FileDigest.sha256(of: dir + "/big") == String(expected))
        #expect(throws: YardError.self) { try FileDigest.sha256(of: dir + "/missing") }
        do {
            _ = try FileDigest.sha256(of: dir + "/missing")
        } catch {
            #expect(error.code == .notFound && error.field == dir + "/missing" && !error.message.contains("\n"), "\(error)")
        }
    }
}
