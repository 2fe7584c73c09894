import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import YardDatasets
import YardDomain
import YardServer

struct Datasets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Registered datasets: add versions, list, show, validate, split.",
        subcommands: [Add.self, List.self, ShowDataset.self, Validate.self, Split.self, Demo.self])

    struct ImportOptions: ParsableArguments {
        @Option(help: "yolo, flat, coco or classify (default: detected).") var format: String?
        @Option(help: "Split fractions for a folder without splits: train,val[,test].") var split: String?
        @Option(help: "Seed of that split (the same seed gives the same split).") var seed: UInt64?
        @Option(help: "Class names, comma-separated (a flat folder without classes.txt).") var names: String?

        var nameList: [String]? { names.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } }

        func options() throws(YardError) -> DatasetPlan.Options {
            var options = DatasetPlan.Options(format: format, seed: seed ?? 0, names: nameList)
            if let split { options.ratios = try DatasetPlan.Options.parseRatios(split) }
            return options
        }
    }

    /// A path made absolute against the working folder.
    static func absolute(_ path: String) -> String {
        let expanded = NSString(string: path).expandingTildeInPath
        return URL(fileURLWithPath: expanded, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a version of a dataset: a YOLO folder or its data.yaml, a flat folder (split here), COCO JSON, or a ZIP of one.",
            discussion: "The server reads SOURCE from its own disk. Adding unchanged data adds no version.")

        @Argument(help: "Dataset name.") var name: String
        @Argument(help: "Folder, data.yaml, COCO .json or .zip.") var source: String
        @OptionGroup var importOptions: ImportOptions
        @Flag(help: "Print the new version as JSON.") var json = false
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                let request = DatasetService.AddRequest(name: name, source: source.hasPrefix("s3://") ? source : Datasets.absolute(source),
                                                        format: importOptions.format, split: importOptions.split, seed: importOptions.seed,
                                                        names: importOptions.nameList)
                var http = server.client.request(.POST, "/api/datasets", body: try JSONEncoder().encode(request))
                http.headers.add(name: "Accept", value: "application/x-ndjson")
                let response = try await server.client.execute(http, timeout: .hours(24))
                if response.status.code >= 400 {
                    let data = Data(buffer: try await response.body.collect(upTo: 1 << 20))
                    try APIClient.check(response.status, data)
                }
                var bar = ScanBar()
                var pending = Data()
                var final: [String: JSONValue]?
                for try await chunk in response.body {
                    pending.append(contentsOf: chunk.readableBytesView)
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = pending[pending.startIndex..<newline]
                        pending.removeSubrange(pending.startIndex...newline)
                        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: line) else { continue }
                        if let phase = object["phase"]?.stringValue {
                            bar.show(phase, done: object["done"]?.intValue ?? 0, total: object["total"]?.intValue ?? 0)
                        } else if object["waiting"] != nil {
                            bar.say("waiting for another import to finish")
                        } else {
                            final = object
                        }
                    }
                }
                bar.finish()
                guard let final else { throw YardError(.unavailable, "the server ended the import without a result; see its log") }
                if let message = final["message"]?.stringValue, final["error"] != nil {
                    throw YardError(final["error"]?.stringValue == "not_found" ? .notFound : .invalidInput, field: final["field"]?.stringValue, message)
                }
                guard let added = final["added"] else { throw YardError(.unavailable, "the server's answer has no version") }
                if json { return Output.line(String(decoding: try JSONEncoder().encode(added), as: UTF8.self)) }
                let version = try APIClient.decoder.decode(DatasetVersion.self, from: JSONEncoder().encode(added["version"] ?? .null))
                let created = added["created"]?.boolValue ?? false
                Output.line(created ? "added \(version.name) version \(version.number)" : "\(version.name): unchanged, still version \(version.number)")
                Output.line("  id \(version.id)   (train on it with  data: dataset:\(version.name)@\(version.number))")
                Output.line("  " + Datasets.summary(version))
                for note in version.notes { Output.line("  \(note)") }
                if version.errors + version.warnings > 0 {
                    Output.line("  \(version.errors) errors, \(version.warnings) warnings: `yard datasets validate \(version.name)@\(version.number)`")
                }
            }
        }
    }

    static func summary(_ version: DatasetVersion) -> String {
        let splits = ["train", "val", "test"].compactMap { name in version.splits[name].map { "\(name) \($0.images)" } }
            + version.splits.keys.sorted().filter { !["train", "val", "test"].contains($0) }.map { "\($0) \(version.splits[$0]!.images)" }
        return "\(version.format), \(version.task): \(version.files) files (\(Datasets.bytes(version.bytes))), \(version.classes.count) classes; images: \(splits.joined(separator: ", "))"
    }

    static func bytes(_ n: Int64) -> String {
        n >= 1 << 30 ? String(format: "%.1f GB", Double(n) / 1e9) : n >= 1 << 20 ? String(format: "%.1f MB", Double(n) / 1e6) : String(format: "%.1f kB", Double(n) / 1e3)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered datasets with their latest version.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var server: ServerOptions

        struct Answer: Codable { var datasets: [Row] }
        struct Row: Codable {
            var name: String, number: Int, id: String, files: Int, classes: [String], versions: Int, created_at: Date, errors: Int
        }

        func run() async throws {
            try await reporting {
                let answer = try await server.client.get("/api/datasets", as: Answer.self)
                if json { return try Output.json(answer) }
                if answer.datasets.isEmpty { return Output.line("no datasets; add one with `yard datasets add NAME FOLDER`") }
                Table.print(header: ["NAME", "LATEST", "VERSIONS", "ID", "FILES", "CLASSES", "ERRORS", "ADDED"], rows: answer.datasets.map {
                    [$0.name, "\($0.number)", "\($0.versions)", String($0.id.prefix(12)), "\($0.files)", "\($0.classes.count)", "\($0.errors)",
                     ISO8601DateFormatter().string(from: $0.created_at)]
                })
            }
        }
    }

    struct ShowDataset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a dataset's versions and the jobs that trained on each.")
        @Argument(help: "Dataset name.") var name: String
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var server: ServerOptions

        struct Answer: Codable { var name: String; var versions: [Row] }
        struct Row: Codable {
            var version: DatasetVersion
            var jobs: [JobRow]
            init(from decoder: any Decoder) throws {
                version = try DatasetVersion(from: decoder)
                jobs = try decoder.container(keyedBy: Key.self).decode([JobRow].self, forKey: .jobs)
            }
            func encode(to encoder: any Encoder) throws { try version.encode(to: encoder) }
            enum Key: String, CodingKey { case jobs }
        }
        struct JobRow: Codable { var id: String; var state: String; var fitness: Double? }

        func run() async throws {
            try await reporting {
                try DatasetVersion.validateName(name)
                let data = try await server.client.send(.GET, "/api/datasets/\(name)")
                if json { return Output.line(String(decoding: data, as: UTF8.self)) }
                let answer = try APIClient.decoder.decode(Answer.self, from: data)
                for row in answer.versions {
                    let v = row.version
                    Output.line("\(v.name)@\(v.number)  \(v.id)  added \(ISO8601DateFormatter().string(from: v.createdAt)) from \(v.source)")
                    Output.line("  " + Datasets.summary(v))
                    Output.line("  classes: \(v.classes.prefix(20).joined(separator: ", "))\(v.classes.count > 20 ? ", …" : "")")
                    for split in v.splits.keys.sorted() {
                        let s = v.splits[split]!
                        let counts = zip(v.classes, s.classCounts).prefix(8).map { "\($0) \($1)" }.joined(separator: ", ")
                        Output.line("  \(split): \(s.images) images, \(s.labelled) labelled, \(s.instances) boxes (\(counts)\(v.classes.count > 8 ? ", …" : ""))")
                    }
                    if v.errors + v.warnings > 0 { Output.line("  \(v.errors) errors, \(v.warnings) warnings") }
                    Output.line("  jobs: " + (row.jobs.isEmpty ? "none" : row.jobs.map { "\($0.id) (\($0.state))" }.joined(separator: ", ")))
                }
            }
        }
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a dataset folder (here, on all cores) or a registered version (its stored report).",
            discussion: "Exits 1 when there are errors. --fix writes a cleaned copy; the source is never changed.")

        @Argument(help: "A folder, data.yaml or COCO .json here; or NAME[@VERSION] of a registered dataset.") var target: String
        @OptionGroup var importOptions: ImportOptions
        @Option(help: "Write a cleaned copy to this new folder.") var fix: String?
        @Flag(help: "Print the report as JSON.") var json = false
        @Option(help: "Problems listed in full (the rest are counted).") var limit = 50
        @OptionGroup var server: ServerOptions

        func run() async throws {
            var errors = 0
            try await reporting {
                let path = Datasets.absolute(target)
                let report: ValidationReport
                if FileManager.default.fileExists(atPath: path) {
                    let plan = try DatasetPlan.make(source: path, options: try importOptions.options())
                    let bar = LockedBar()
                    let result = try DatasetValidator.run(plan, root: path, cache: nil) { done, total in bar.show("read", done: done, total: total) }
                    bar.finish()
                    report = result.report
                    if let fix {
                        let out = Datasets.absolute(fix)
                        let (kept, dropped) = try DatasetLibrary.writeFixed(plan, result, to: out)
                        Output.line("wrote \(out): \(kept) files kept, \(dropped) left out")
                    }
                } else {
                    guard fix == nil else { throw YardError.invalid("fix", "--fix needs a folder here; `yard datasets show` gives a version's path") }
                    let parts = target.split(separator: "@", maxSplits: 1).map(String.init)
                    let reference = try DatasetReference.parse("dataset:" + target, field: "target")
                    var version = reference.version ?? ""
                    if version.isEmpty {
                        let answer = try await server.client.get("/api/datasets/\(parts[0])", as: ShowDataset.Answer.self)
                        version = "\(answer.versions.map(\.version.number).max() ?? 1)"
                    }
                    report = try await server.client.get("/api/datasets/\(reference.name)/versions/\(version)/report", as: ValidationReport.self)
                }
                errors = report.errors
                if json { return try Output.json(report) }
                Datasets.print(report, limit: limit)
            }
            if errors > 0 { throw ExitCode(1) }
        }
    }

    static func print(_ report: ValidationReport, limit: Int) {
        Output.line("\(report.root): \(report.task), \(report.files) files (\(bytes(report.bytes))), \(report.classes.count) classes, read in \(String(format: "%.2f", report.seconds)) s")
        let splits = report.splits.keys.sorted { (["train": 0, "val": 1, "test": 2][$0] ?? 3, $0) < (["train": 0, "val": 1, "test": 2][$1] ?? 3, $1) }
        if !splits.isEmpty {
            Table.print(header: ["SPLIT", "IMAGES", "LABELLED", "BOXES"] + report.classes.prefix(8).map { $0.uppercased() }, rows: splits.map { name in
                let s = report.splits[name]!
                return [name, "\(s.images)", "\(s.labelled)", "\(s.instances)"] + s.classCounts.prefix(8).map(String.init)
            })
        }
        if !report.imageSizes.isEmpty {
            let order = ["≤32", "≤64", "≤128", "≤256", "≤320", "≤480", "≤640", "≤960", "≤1280", "≤1920", "≤2560", "≤4096", ">4096", "unknown"]
            Output.line("image sizes (longer side): " + order.compactMap { key in report.imageSizes[key].map { "\(key) \($0)" } }.joined(separator: ", "))
        }
        var kinds: [String: Int] = [:]
        for problem in report.problems { kinds[problem.kind, default: 0] += 1 }
        if report.problems.isEmpty { return Output.line("no problems found") }
        Output.line("\(report.errors) errors, \(report.warnings) warnings: " + kinds.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        for problem in report.problems.prefix(limit) {
            Output.line("  \(problem.severity.rawValue): \(problem.location): \(problem.message)")
        }
        if report.problems.count > limit { Output.line("  … and \(report.problems.count - limit) more (--limit N, or --json)") }
    }

    struct Split: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a folder of images and labels (or COCO JSON) as a YOLO dataset split into train/val/test.",
            discussion: "The same seed gives the same split. Nothing is registered: `yard datasets add` the result, or add the source with --split.")
        @Argument(help: "A flat folder of images and labels, or COCO JSON.") var source: String
        @Argument(help: "The new folder to write.") var out: String
        @OptionGroup var importOptions: ImportOptions

        func run() async throws {
            try await reporting {
                let options = try importOptions.options()
                let plan = try DatasetPlan.make(source: Datasets.absolute(source), options: options)
                guard plan.format == "flat" || plan.format == "coco" else {
                    throw YardError.invalid("source", "\(source) is a \(plan.format) dataset, already split; give a flat folder of images and labels or COCO JSON")
                }
                let result = try DatasetValidator.run(plan, root: Datasets.absolute(source), cache: nil)
                var clean = result  // a split copies everything; --fix is what drops
                clean.dropped = []
                clean.cleanedLabels = [:]
                let target = Datasets.absolute(out)
                let (kept, _) = try DatasetLibrary.writeFixed(plan, clean, to: target)
                Output.line("wrote \(target)/data.yaml: \(kept) files; " + plan.splits.map { "\($0.name) \($0.images.count)" }.joined(separator: ", "))
                for note in plan.notes { Output.line("  \(note)") }
            }
        }
    }
}

/// A one-line progress bar on stderr for long scans (only on a terminal).
struct ScanBar {
    let tty = isatty(STDERR_FILENO) == 1
    var last = ""
    var started = Date()

    mutating func show(_ phase: String, done: Int, total: Int) {
        guard tty, total > 0 else { return }
        let fraction = Double(done) / Double(total)
        let width = 30
        let filled = Int(fraction * Double(width))
        let rate = Double(done) / max(Date().timeIntervalSince(started), 0.001)
        let text = "\r\(phase) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total) files, \(Int(rate))/s"
        guard text != last else { return }
        last = text
        FileHandle.standardError.write(Data(text.utf8))
    }

    mutating func say(_ text: String) {
        guard tty else { return }
        FileHandle.standardError.write(Data(("\r" + text + "\n").utf8))
    }

    func finish() {
        if tty, !last.isEmpty { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// `ScanBar` shared by the validator's threads.
final class LockedBar: @unchecked Sendable {
    private let lock = NSLock()
    private var bar = ScanBar()
    func show(_ phase: String, done: Int, total: Int) { lock.lock(); bar.show(phase, done: done, total: total); lock.unlock() }
    func finish() { lock.lock(); bar.finish(); lock.unlock() }
}
