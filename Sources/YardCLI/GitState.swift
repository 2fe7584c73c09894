import Crypto
import Foundation

/// The code a job is submitted from: the commit checked out in the
/// config's folder and whether the work tree differs from it. Sent as
/// `X-Yard-Git-Commit` and `X-Yard-Git-Dirty` (`clean`, or the sha256 of
/// `git diff HEAD --binary` followed by the names of untracked files, so the
/// same edits hash the same).
struct GitState {
    var commit: String
    /// nil: clean.
    var diffSHA256: String?

    var headers: [String: String] {
        ["X-Yard-Git-Commit": commit, "X-Yard-Git-Dirty": diffSHA256 ?? "clean"]
    }

    static func near(_ path: String) -> GitState? {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard let head = git(folder, ["rev-parse", "HEAD"]) else { return nil }
        let commit = String(decoding: head, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !commit.isEmpty else { return nil }
        guard let diff = git(folder, ["diff", "HEAD", "--binary"]),
              let untracked = git(folder, ["ls-files", "--others", "--exclude-standard", "-z"]) else {
            return GitState(commit: commit, diffSHA256: nil)
        }
        guard !diff.isEmpty || !untracked.isEmpty else { return GitState(commit: commit, diffSHA256: nil) }
        var hasher = SHA256()
        hasher.update(data: diff)
        hasher.update(data: untracked)
        return GitState(commit: commit, diffSHA256: hasher.finalize().map { String(format: "%02x", $0) }.joined())
    }

    /// The command's standard output, or nil when git is missing or it failed.
    private static func git(_ folder: String, _ arguments: [String]) -> Data? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", folder] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? data : nil
    }
}
