import Foundation
import Logging
import YardDomain
import YardQueue
import YardStore

/// Collects a job's log lines: appended to its `train.log` at once, and to
/// the store in batches (every half second or 200 lines) so a chatty run
/// does not turn into one write per line.
actor LogSink {
    let ledger: any JobLedger
    let jobID: String
    nonisolated let file: String
    let logger: Logger
    let masker: SecretMasker
    private var pending: [String] = []
    private var lastFlush = ContinuousClock.now
    private var handle: FileHandle?
    private(set) var lastLine: String?

    init(ledger: any JobLedger, jobID: String, file: String, logger: Logger, masker: SecretMasker) {
        self.ledger = ledger
        self.masker = masker
        self.jobID = jobID
        self.file = file
        self.logger = logger
        let fm = FileManager.default
        try? fm.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if !fm.fileExists(atPath: file) { fm.createFile(atPath: file, contents: nil) }
        handle = FileHandle(forWritingAtPath: file)
        _ = try? handle?.seekToEnd()
    }

    func append(_ raw: String) async {
        let line = masker.mask(raw)
        if !line.trimmingCharacters(in: .whitespaces).isEmpty { lastLine = line }
        try? handle?.write(contentsOf: Data((line + "\n").utf8))
        pending.append(line)
        if pending.count >= 200 || ContinuousClock.now - lastFlush > .milliseconds(500) { await flush() }
    }

    func flush() async {
        lastFlush = .now
        guard !pending.isEmpty else { return }
        let lines = pending
        pending = []
        do { try await ledger.appendLog(jobID: jobID, lines: lines) } catch {
            logger.error("job \(jobID): storing \(lines.count) log lines failed: \(error)")
        }
    }

    func close() async {
        await flush()
        try? handle?.close()
        handle = nil
    }
}
