import Foundation
import Testing

/// Issue 27: one place for each change of state. The store's writes of
/// jobs, sweeps, model versions, aliases and dataset versions are made by
/// the job layer (`Sources/YardJobs`) and nowhere else; the store's own
/// drivers and the benchmarks (which generate records) are the exceptions.
/// Before this test the sweep service, the registry, the dataset service and
/// the composition root each wrote their records themselves.
@Suite struct LayeringTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources").standardizedFileURL.path
    static let allowed = ["YardStore", "YardJobs", "YardBench"]
    static let writes = ["insert", "update", "apply", "recordEpoch", "recordArtifact", "appendLog", "appendEvent",
                         "createModelVersion", "updateModelVersion", "setModelAlias", "setModelSettings",
                         "insertSweep", "updateSweep", "recordDatasetVersion"]

    /// `file:line: text` of every call of a store's write outside the allowed targets.
    static func writesOutsideTheJobLayer(in root: String) throws -> [String] {
        let pattern = try NSRegularExpression(pattern: #"\bstore\??\.(\#(writes.joined(separator: "|")))\("#)
        var found: [String] = []
        for target in try FileManager.default.contentsOfDirectory(atPath: root).sorted() where !allowed.contains(target) {
            guard let walker = FileManager.default.enumerator(atPath: root + "/" + target) else { continue }
            for case let relative as String in walker where relative.hasSuffix(".swift") {
                let text = try String(contentsOfFile: root + "/" + target + "/" + relative, encoding: .utf8)
                for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    let code = String(line)
                    guard !code.trimmingCharacters(in: .whitespaces).hasPrefix("//") else { continue }
                    if pattern.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil {
                        found.append("\(target)/\(relative):\(number + 1): \(code.trimmingCharacters(in: .whitespaces))")
                    }
                }
            }
        }
        return found.sorted()
    }

    @Test func onlyTheJobLayerWritesRecords() throws {
        let found = try Self.writesOutsideTheJobLayer(in: Self.sources)
        #expect(found.isEmpty, "records written outside Sources/YardJobs (add a transition there):\n\(found.joined(separator: "\n"))")
    }

    /// The scan itself finds a write (a scan that finds nothing would pass on any tree).
    @Test func theScanFindsAWriteWhereThereIsOne() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layering-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/YardSweeps/Sub", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/YardJobs", withIntermediateDirectories: true)
        try "let s = try await store.updateSweep(id) { $0.state = .stopping }\n// store.insertSweep(x)\n"
            .write(toFile: dir + "/YardSweeps/Sub/A.swift", atomically: true, encoding: .utf8)
        try "try await control.store?.recordDatasetVersion(v)\n".write(toFile: dir + "/YardSweeps/B.swift", atomically: true, encoding: .utf8)
        try "try await store.updateSweep(id) { _ in }\n".write(toFile: dir + "/YardJobs/C.swift", atomically: true, encoding: .utf8)
        #expect(try Self.writesOutsideTheJobLayer(in: dir) == [
            "YardSweeps/B.swift:1: try await control.store?.recordDatasetVersion(v)",
            "YardSweeps/Sub/A.swift:1: let s = try await store.updateSweep(id) { $0.state = .stopping }",
        ])
    }
}
