import ArgumentParser
import Foundation
import Synchronization
import YardBackup
import YardDomain

/// `yard backup OUT`: runs beside the server on the same machine, against
/// the data dir itself (SQLite's online backup works across processes, so
/// the server keeps training and answering meanwhile).
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write one archive of a data dir (store snapshot, weights, datasets, runs, sha256 manifest); the server may be running.",
        discussion: "Run it on the machine that holds the data dir. The secret key that seals job secrets stays out unless --include-secret-key; keep it apart from the archive or restore cannot open those secrets.")

    @Argument(help: "The archive to write (e.g. yard-2026-12-07.tar.zst); it must not exist.") var output: String
    @Option(name: .customLong("data-dir"), help: "The data dir of `yard up`.") var dataDir = ".yard"
    @Flag(name: .customLong("no-checkpoints"), help: "Leave out last.pt and epochN.pt (best.pt stays).") var noCheckpoints = false
    @Flag(name: .customLong("include-secret-key"), help: "Put DATA/secret.key in the archive (anyone with the archive can then open job secrets).") var includeSecretKey = false
    @Option(help: "auto (zstd, else gzip, else none), zstd, gzip or none.") var compression = "auto"
    @Flag(name: .customLong("no-sync"), help: "Return without waiting for the disk (as tar does): faster, but a power cut soon after can lose the archive, and the server's writes may wait behind the kernel's meanwhile.") var noSync = false

    func run() async throws {
        try await reporting {
            var options = BackupOptions(dataDirectory: dataDir, output: output)
            options.sync = !noSync
            options.checkpoints = !noCheckpoints
            options.includeSecretKey = includeSecretKey
            options.compression = compression
            let bar = ByteProgress(label: "backup")
            if bar.enabled { options.progress = { bar.update($0, $1) } }
            // Ctrl-C or a TERM leaves nothing behind: the partial archive and the snapshot go.
            let leftovers = Backup.temporaryPaths(output: output)
            let signals = ([SIGINT, SIGTERM] as [Int32]).map { (number: Int32) -> any DispatchSourceSignal in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    for path in leftovers { unlink(path) }
                    Output.error("backup interrupted; no archive written")
                    Foundation.exit(130)
                }
                source.resume()
                return source
            }
            defer { for source in signals { source.cancel() } }
            let started = Date()
            let settings = options
            let result = try await offloadThrowing { () in try Backup.run(settings) }
            bar.finish()
            for note in result.notes { Output.line("note: \(Output.printable(note))") }
            if result.secretKeyIncluded {
                Output.warning("WARNING: the archive holds the secret key (DATA/secret.key): anyone who can read \(result.output) can open every job secret in it. Keep it as safe as the key itself.")
            }
            let seconds = max(Date().timeIntervalSince(started), 0.001)
            Output.line("wrote \(Output.printable(result.output)): \(result.files) files, \(ByteProgress.size(result.bytes)) read, \(ByteProgress.size(result.archiveBytes)) archive (\(result.compression.rawValue)), \(String(format: "%.1f", Double(result.bytes) / 1e6 / seconds)) MB/s")
            if !result.secretKeyIncluded {
                Output.line("the secret key is not in the archive: keep DATA/secret.key (or YARD_SECRET_KEY) to open job secrets after a restore")
            }
            if noSync { Output.line("--no-sync: the archive may not be on the disk yet (run `sync \(Output.printable(result.output))` before relying on it)") }
        }
    }
}

/// `yard restore ARCHIVE --data-dir D`.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup into a data dir (empty, or merged: files already there are kept unless --overwrite).",
        discussion: "Every file is checked against the archive's manifest before anything is written; a damaged archive restores nothing. Stop the server on that data dir first.")

    @Argument(help: "An archive written by `yard backup`.") var archive: String
    @Option(name: .customLong("data-dir"), help: "The data dir to restore into (created if absent).") var dataDir: String
    @Flag(help: "Replace files that differ from the archive's (default: keep them).") var overwrite = false
    @Flag(name: .customLong("dry-run"), help: "Check the archive and list what would change; change nothing.") var dryRun = false

    func run() async throws {
        try await reporting {
            var options = RestoreOptions(archive: archive, dataDirectory: dataDir)
            options.overwrite = overwrite
            options.dryRun = dryRun
            let settings = options
            let result = try await offloadThrowing { () in try Restore.run(settings) }
            let verb: [RestoreResult.Action: String] = dryRun
                ? [.add: "would add", .replace: "would replace", .skip: "would keep (differs)"]
                : [.add: "added", .replace: "replaced", .skip: "kept (differs)"]
            for change in result.changes where change.action != .same {
                if !dryRun && change.action == .add { continue }
                Output.line("\(verb[change.action] ?? change.action.rawValue) \(Output.printable(change.path))")
            }
            let summary = "\(result.count(.add)) added (\(ByteProgress.size(result.bytes(.add)))), \(result.count(.replace)) replaced, \(result.count(.skip)) kept as they were, \(result.count(.same)) already the same"
            Output.line((dryRun ? "dry run, nothing changed: " : "restored into \(Output.printable(result.dataDirectory)): ") + summary)
            if result.changes.contains(where: { $0.path == "yard.sqlite" && $0.action == .skip }) {
                Output.warning("the data dir already has a store (yard.sqlite), kept: the archive's jobs and versions are not merged into it; --overwrite replaces it")
            }
            if !result.header.secretKeyIncluded {
                Output.line("the archive holds no secret key: start the server with the key of \(Output.printable(result.header.source)) (copy its secret.key into the data dir, or set YARD_SECRET_KEY), or jobs' secrets cannot be opened")
            } else if result.changes.contains(where: { $0.path == "secret.key" && $0.action == .skip }) {
                Output.warning("the data dir's own secret.key was kept; job secrets of the archive are sealed with the archive's key (--overwrite takes it)")
            }
        }
    }
}

/// `yard gc`.
struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Free checkpoints, run folders of finished jobs, unreferenced cached weights and dataset objects.",
        discussion: "Never removes the weights of a registered version, a dataset version, or anything of a queued or running job. May run beside the server.")

    @Option(name: .customLong("data-dir"), help: "The data dir of `yard up`.") var dataDir = ".yard"
    @Option(name: .customLong("older-than"), help: "Only jobs finished longer ago than this (30d, 12h, 0).") var olderThan = "30d"
    @Option(name: .customLong("keep-last"), help: "Keep the folders of the N most recently finished jobs whatever their age.") var keepLast = 0
    @Flag(name: .customLong("dry-run"), help: "List what would be freed; remove nothing.") var dryRun = false

    func run() async throws {
        try await reporting {
            guard keepLast >= 0 else { throw YardError(.invalidInput, field: "--keep-last", "--keep-last must be 0 or more") }
            var options = RetentionOptions(dataDirectory: dataDir)
            options.olderThan = try RetentionOptions.parseAge(olderThan)
            options.keepLast = keepLast
            options.dryRun = dryRun
            let settings = options
            let result = try await offloadThrowing { () in try Retention.run(settings) }
            for removal in result.removals {
                Output.line("\(dryRun ? "would remove" : "removed") \(Output.printable(removal.path)) (\(removal.files) files, \(ByteProgress.size(removal.bytes))): \(Output.printable(removal.reason))")
            }
            Output.line("\(dryRun ? "would free" : "freed") \(ByteProgress.size(result.bytes)) in \(result.files) files")
        }
    }
}

/// A bytes-done bar on stderr, only when stderr is a terminal.
final class ByteProgress: Sendable {
    let label: String
    let enabled = isatty(STDERR_FILENO) == 1
    private let state = Mutex((drawn: Date.distantPast, start: Date()))

    init(label: String) { self.label = label }

    func update(_ done: Int64, _ total: Int64) {
        let now = Date()
        let draw = state.withLock { s -> Double? in
            guard now.timeIntervalSince(s.drawn) >= 0.2 || done == total else { return nil }
            s.drawn = now
            return now.timeIntervalSince(s.start)
        }
        guard let elapsed = draw else { return }
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 30
        let filled = Int(fraction * Double(width))
        let rate = elapsed > 0 ? Double(done) / 1e6 / elapsed : 0
        let line = "\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] \(Int(fraction * 100))% \(Self.size(done))/\(Self.size(total)) \(String(format: "%.0f", rate)) MB/s"
        try? FileHandle.standardError.write(contentsOf: Data(line.utf8))
    }

    func finish() {
        if enabled { try? FileHandle.standardError.write(contentsOf: Data("\n".utf8)) }
    }

    static func size(_ bytes: Int64) -> String {
        let b = Double(bytes)
        if b >= 1e9 { return String(format: "%.2f GB", b / 1e9) }
        if b >= 1e6 { return String(format: "%.1f MB", b / 1e6) }
        if b >= 1e3 { return String(format: "%.1f kB", b / 1e3) }
        return "\(bytes) B"
    }
}
