import Foundation
import Testing
import YardArtifacts
import YardDomain

@Suite("Local artifact store")
struct LocalArtifactStoreTests {
    @Test func putGetExistsAndConfinement() async throws {
        let root = NSTemporaryDirectory() + "yard-artifacts-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let source = root + "/source.bin"
        let bytes = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 * 31) })
        try bytes.write(to: URL(fileURLWithPath: source))
        let store = LocalArtifactStore(root: root + "/store")

        #expect(try await store.put(file: source, key: "job/weights/best.pt") == Int64(bytes.count))
        #expect(try await store.exists(key: "job/weights/best.pt"))
        #expect(!(try await store.exists(key: "job/none")))
        try await store.get(key: "job/weights/best.pt", to: root + "/back.bin")
        #expect(FileManager.default.contents(atPath: root + "/back.bin") == bytes)
        await #expect(throws: YardError.self) { try await store.get(key: "job/none", to: root + "/x") }
        await #expect(throws: YardError.self) { try await store.put(file: source, key: "../escape") }
        #expect(!FileManager.default.fileExists(atPath: root + "/escape"))
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: root + "/store").filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "no temporary files left behind")
    }

    @Test func fileCopyCopiesToTheEndAndRefusesMissingFiles() throws {
        let dir = NSTemporaryDirectory() + "yard-copy-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let bytes = Data(repeating: 7, count: 2_500_000)
        try bytes.write(to: URL(fileURLWithPath: dir + "/a"))
        #expect(try FileCopy.copy(from: dir + "/a", to: dir + "/b"))
        #expect(FileManager.default.contents(atPath: dir + "/b") == bytes)
        #expect(throws: YardError.self) { try FileCopy.copy(from: dir + "/missing", to: dir + "/c") }
    }
}
