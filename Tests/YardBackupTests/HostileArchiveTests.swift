import Crypto
import Foundation
import Testing
@testable import YardBackup
import YardDomain
import YardTestSupport

/// Archives made to hurt: each restores nothing (the target's bytes are
/// unchanged, no staging is left, nothing appears outside it) and the
/// error is one line that names the member.
@Suite("Restore: damaged and hostile archives")
struct HostileArchiveTests {
    struct Member {
        var path: String
        var kind: Tar.Kind = .file
        var bytes: [UInt8] = []
        var link = ""
        var flag: UInt8?
    }

    static func sha(_ bytes: [UInt8]) -> String { SHA256.hash(data: Data(bytes)).map { String(format: "%02x", $0) }.joined() }

    /// A tar written by hand: the header, `members`, the manifest (of `listed`, default: every file member as it is).
    static func archive(_ members: [Member], listed: [BackupManifest.Entry]? = nil, header: Bool = true) throws -> [UInt8] {
        var out: [UInt8] = []
        func add(_ m: Member) {
            var h = Tar.header(path: m.path, kind: m.kind, size: Int64(m.bytes.count), mode: 0o644, mtime: 0, link: m.link)
            if let flag = m.flag {
                let start = h.count - Tar.block
                h[start + 156] = flag
                for i in 148..<156 { h[start + i] = 0x20 }
                let sum = h[start...].reduce(0) { $0 + Int($1) }
                let digits = Array(String(String(sum, radix: 8).reversed()).padding(toLength: 6, withPad: "0", startingAt: 0).reversed())
                for (i, c) in digits.enumerated() { h[start + 148 + i] = c.asciiValue! }
                h[start + 154] = 0
            }
            out += h + m.bytes + [UInt8](repeating: 0, count: Tar.padding(Int64(m.bytes.count)))
        }
        if header {
            let head = BackupHeader(format: 1, trainyard: "test", createdAt: Date(), source: "/old", secretKeyIncluded: false, checkpointsIncluded: true)
            add(Member(path: BackupManifest.header, bytes: Array(try BackupJSON.encoder.encode(head))))
        }
        for m in members { add(m) }
        let entries = listed ?? members.filter { $0.kind == .file }.map { BackupManifest.Entry(path: $0.path, size: Int64($0.bytes.count), sha256: sha($0.bytes)) }
        add(Member(path: BackupManifest.name, bytes: Array(try BackupJSON.encoder.encode(BackupManifest(files: entries)))))
        return out + [UInt8](repeating: 0, count: Tar.block * 2)
    }

    /// Restores `bytes` into a data dir that already holds a file; expects
    /// a one-line error containing `naming`, and the dir as it was.
    static func refuses(_ bytes: [UInt8], naming: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = try TemporaryDirectory("yard-hostile")
        defer { dir.remove() }
        let archive = dir.file("a.tar")
        try Data(bytes).write(to: URL(fileURLWithPath: archive))
        let target = dir.file("target")
        try dir.write("target/existing.txt", "kept")
        let before = DataDirFixture.treeHash(target)
        let outside = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        for dryRun in [true, false] {
            var options = RestoreOptions(archive: archive, dataDirectory: target)
            options.dryRun = dryRun
            let error = #expect(throws: YardError.self, sourceLocation: sourceLocation) { try Restore.run(options) }
            #expect(error?.message.contains(naming) == true, "\(error?.message ?? "no error")", sourceLocation: sourceLocation)
            #expect(error?.message.contains("\n") == false, sourceLocation: sourceLocation)
        }
        var after = DataDirFixture.treeHash(target)
        after["yard.lock"] = nil  // the restore held the dir's lock while it checked
        #expect(after == before, "the target changed", sourceLocation: sourceLocation)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == outside, sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/evil"), sourceLocation: sourceLocation)
        // Into a data dir that does not exist: it is not left behind.
        let fresh = dir.file("fresh")
        #expect(throws: YardError.self, sourceLocation: sourceLocation) { try Restore.run(RestoreOptions(archive: archive, dataDirectory: fresh)) }
        #expect(!FileManager.default.fileExists(atPath: fresh), sourceLocation: sourceLocation)
    }

    let good = Member(path: "data/runs/j/results.csv", bytes: Array("1,2\n".utf8))

    @Test func aWellFormedHandMadeArchiveRestores() throws {
        let dir = try TemporaryDirectory("yard-hostile-ok")
        defer { dir.remove() }
        try Data(try Self.archive([good])).write(to: URL(fileURLWithPath: dir.file("a.tar")))
        let result = try Restore.run(RestoreOptions(archive: dir.file("a.tar"), dataDirectory: dir.file("t")))
        #expect(result.count(.add) == 1)
        #expect(try String(contentsOfFile: dir.file("t/runs/j/results.csv"), encoding: .utf8) == "1,2\n")
    }

    @Test func aDotDotMember() throws {
        try Self.refuses(try Self.archive([good, Member(path: "data/../../evil", bytes: [1, 2, 3])]), naming: "data/../../evil")
    }

    /// Refused early in a zstd stream with megabytes still to come: the
    /// decompressor is stopped, the restore returns (it once hung here).
    @Test func aHostileMemberEarlyInACompressedArchive() throws {
        let dir = try TemporaryDirectory("yard-hostile-zstd")
        defer { dir.remove() }
        let big = Member(path: "data/runs/j/big.bin", bytes: DataDirFixture.randomBytes(4 << 20, seed: 3))
        try Data(try Self.archive([Member(path: "data/../../evil", bytes: [1]), big])).write(to: URL(fileURLWithPath: dir.file("plain.tar")))
        let zstd = Process()
        zstd.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        zstd.arguments = ["zstd", "-q", "-f", dir.file("plain.tar"), "-o", dir.file("a.tar.zst")]
        try zstd.run()
        zstd.waitUntilExit()
        try #require(zstd.terminationStatus == 0)
        try Self.refuses(try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.file("a.tar.zst")))), naming: "data/../../evil")
    }

    @Test func anAbsoluteMember() throws {
        try Self.refuses(try Self.archive([good, Member(path: "/tmp/evil-\(getpid())", bytes: [1])]), naming: "/tmp/evil-")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/evil-\(getpid())"))
    }

    @Test func aSymlinkMember() throws {
        try Self.refuses(try Self.archive([Member(path: "data/runs/link", link: "/etc", flag: 0x32), good]), naming: "data/runs/link")
    }

    @Test func aDeviceMember() throws {
        try Self.refuses(try Self.archive([good, Member(path: "data/runs/dev", flag: 0x33)]), naming: "data/runs/dev")
    }

    @Test func aHardLinkToNothingEarlier() throws {
        try Self.refuses(try Self.archive([Member(path: "data/runs/l", kind: .hardLink, link: "data/../../etc/passwd"), good]), naming: "data/runs/l")
    }

    @Test func aMemberWhoseBytesDoNotMatchTheManifest() throws {
        var listed = [BackupManifest.Entry(path: good.path, size: 4, sha256: Self.sha(Array("1,3\n".utf8)))]
        try Self.refuses(try Self.archive([good], listed: listed), naming: good.path)
        listed = []
        try Self.refuses(try Self.archive([good], listed: listed), naming: "is not in the manifest")
        listed = [BackupManifest.Entry(path: good.path, size: 4, sha256: Self.sha(good.bytes)), .init(path: "data/runs/j/gone.pt", size: 1, sha256: Self.sha([0]))]
        try Self.refuses(try Self.archive([good], listed: listed), naming: "data/runs/j/gone.pt")
    }

    @Test func aLockFileOrAMemberOutsideData() throws {
        try Self.refuses(try Self.archive([Member(path: "data/yard.lock", bytes: [1])]), naming: "data/yard.lock")
        try Self.refuses(try Self.archive([Member(path: "elsewhere/x", bytes: [1])]), naming: "elsewhere/x")
    }

    @Test func notABackup() throws {
        try Self.refuses(try Self.archive([good], header: false), naming: "not a yard backup")
        try Self.refuses(Array("just some text, not a tar at all".utf8) + [UInt8](repeating: 7, count: 600), naming: "not a yard backup")
        try Self.refuses([], naming: "empty")
    }

    /// A real backup cut at every kind of place: inside a header, inside a
    /// file, before the manifest, before the end; plain and compressed.
    @Test(arguments: ["none", "zstd", "gzip"])
    func aTruncatedBackup(compression: String) async throws {
        let f = try await BackupRestoreTests.populated("truncated-\(compression)")
        defer { f.dir.remove() }
        var options = BackupOptions(dataDirectory: f.data, output: f.dir.file("full.tar"))
        options.compression = compression
        let full = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try Backup.run(options).output)))
        let cuts = compression == "none" ? [100, 512 + 300, full.count / 3, full.count / 2, full.count - 1024 - 200, full.count - 1024 - 1]
                                         : [10, full.count / 3, full.count / 2, full.count - 8]
        for cut in cuts {
            try Self.refuses(Array(full[0..<cut]), naming: compression == "none" ? "truncated" : "damaged")
        }
    }

    /// One flipped byte inside a stored file is caught by its sha256, and named.
    @Test func aCorruptedByteIsNamed() async throws {
        let f = try await BackupRestoreTests.populated("flip")
        defer { f.dir.remove() }
        var options = BackupOptions(dataDirectory: f.data, output: f.dir.file("flip.tar"))
        options.compression = "none"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try Backup.run(options).output)))
        let marker = Array("epoch,loss\n1,0.5".utf8)
        let at = try #require((0..<(bytes.count - marker.count)).first { bytes[$0..<($0 + marker.count)].elementsEqual(marker) })
        bytes[at + 3] ^= 0x20
        try Self.refuses(bytes, naming: "data/runs/job-a/results.csv")
    }
}
