import ArgumentParser
import Foundation
import YardDomain

/// `yard lineage NAME[@ALIAS|@vN]|JOB`: what made a model version or a job.
struct LineageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lineage",
        abstract: "What made a model version or a job: job and attempts, config, seed, dataset version (DVC hash), code, engine versions, device, sweep, parent model, metrics, alias moves.")

    @Argument(help: "A job id, or a registered model as NAME, NAME@ALIAS or NAME@vN.") var reference: String
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Write the run's record as a tar here: config (secrets masked), dataset manifest, weights' sha256, the engine's environment, metrics (`yard rerun --from-bundle` runs it again).")
    var bundle: String?
    @OptionGroup var server: ServerOptions

    static func path(_ reference: String) -> String {
        "/api/lineage/" + (reference.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_.@"))) ?? reference)
    }

    func run() async throws {
        try await reporting {
            if let bundle { return try await write(bundle: bundle) }
            let lineage = try await server.client.get(Self.path(reference), as: Lineage.self)
            if json { return try Output.json(lineage) }
            Self.print(lineage)
        }
    }

    /// The server's tar, written whole under a temporary name and renamed:
    /// never a half-written bundle at `out`.
    func write(bundle out: String) async throws {
        let url = URL(fileURLWithPath: out)
        let folder = url.deletingLastPathComponent().path
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw YardError.invalid("--bundle", "the folder \(folder) does not exist; give a path in an existing folder")
        }
        let data = try await server.client.send(.GET, Self.path(reference) + "/bundle", timeout: .seconds(600))
        let files = try LineageBundleFile.read(data, path: out)
        let temporary = folder + "/.\(url.lastPathComponent).\(UUID().uuidString.prefix(8)).tmp"
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, url.path) == 0 else { throw YardError(.unavailable, field: "--bundle", "--bundle: cannot write \(out): \(String(cString: strerror(errno)))") }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            if let error = error as? YardError { throw error }
            throw YardError(.unavailable, field: "--bundle", "--bundle: cannot write \(out) (\(error.localizedDescription))")
        }
        let index = files["bundle.json"].flatMap { try? JSONDecoder().decode(JSONValue.self, from: $0) }
        Output.line("wrote \(out): \(files.keys.sorted().joined(separator: ", "))")
        for missing in index?["missing"]?.arrayValue ?? [] { Output.line("  not in it: \(missing.stringValue ?? "?")") }
    }

    static func print(_ l: Lineage) {
        if let model = l.model {
            Output.line("model \(model.name) version \(model.version)\(model.aliases.isEmpty ? "" : " (\(model.aliases.joined(separator: ", ")))"), sha256 \(model.sha256 ?? "-")")
        }
        let others = l.registered.filter { $0 != l.model }
        if !others.isEmpty { Output.line("  also registered as \(others.map { "\($0.name) version \($0.version)" }.joined(separator: ", "))") }
        let job = l.job
        Output.line("job \(job.id): \(job.state.rawValue), \(job.attempts) attempt\(job.attempts == 1 ? "" : "s")\(job.crashes.map { " (\($0) ended by a crash)" } ?? ""), experiment \(job.experiment)")
        let format = ISO8601DateFormatter()
        for attempt in l.attempts {
            Output.line("  attempt \(attempt.number): started \(format.string(from: attempt.started))"
                        + (attempt.end.map { ", \($0.rawValue) \(attempt.ended.map(format.string) ?? "")\(attempt.message.map { " (\($0.prefix(160)))" } ?? "")" } ?? ", running"))
        }
        Output.line("  model \(job.model)")
        Output.line("  seed \(l.seed.map(String.init) ?? "not recorded (Ultralytics' default 0)"), deterministic \(l.deterministic.map { "\($0)" } ?? "not recorded")")
        let d = l.dataset
        if let version = d.version {
            Output.line("dataset \(version.name) version \(version.number): DVC hash \(version.id)\(d.present == false ? " (its files are gone from the server)" : "")")
            Output.line("  source \(version.source), \(version.files) files, \(version.bytes) bytes, classes \(version.classes.joined(separator: ", "))")
            Output.line("  validation \(version.errors) errors, \(version.warnings) warnings; splits " + version.splits.keys.sorted().map { "\($0) \(version.splits[$0]!.images)" }.joined(separator: ", "))
        } else {
            Output.line("dataset \(d.data ?? "-")\(d.hash.map { ", DVC hash \($0)" } ?? "")")
        }
        let code = l.code
        let state = code.dirty.map { $0 ? "dirty, diff sha256 \(code.diff ?? "?")" : "clean" } ?? "clean or dirty not known"
        Output.line("code \(code.commit.map { "commit \($0) (\(state))" } ?? "no git commit recorded")")
        let order = ["python", "torch", "ultralytics", "numpy", "cuda", "cudnn", "engine"]
        let keys = order.filter { l.engine[$0] != nil } + l.engine.keys.filter { !order.contains($0) }.sorted()
        Output.line("engine " + (keys.isEmpty ? "not started" : keys.map { "\($0) \(l.engine[$0]!.isEmpty ? "-" : l.engine[$0]!)" }.joined(separator: ", ")))
        Output.line("device \(l.device ?? "-") on host \(l.host ?? "-")\(l.worker.map { " (worker \($0))" } ?? "")")
        if let sweep = l.sweep {
            let params = (sweep.params ?? [:]).keys.sorted().map { "\($0)=\(Self.show(sweep.params![$0]!))" }.joined(separator: " ")
            Output.line("sweep \(sweep.id)\(sweep.trial.map { " trial \($0)" } ?? " (retrain)")\(params.isEmpty ? "" : ": \(params)")")
        }
        if let parent = l.parent {
            Output.line("parent \(parent.name) version \(parent.version) (asked as \(parent.requested)), sha256 \(parent.sha256)")
        }
        if let original = l.rerunOf { Output.line("rerun of \(original)") }
        if let metrics = l.metrics, !metrics.isEmpty {
            Output.line("metrics " + metrics.keys.sorted().map { "\($0) \(Output.number(metrics[$0]!))" }.joined(separator: ", "))
        }
        if let last = l.lastEpoch, !last.isEmpty {
            Output.line("last epoch " + last.keys.sorted().filter { $0.hasSuffix("_loss") }.map { "\($0) \(Output.number(last[$0]!))" }.joined(separator: ", "))
        }
        if let test = l.test, !test.isEmpty {
            Output.line("test split " + test.keys.sorted().map { "\($0) \(Output.number(test[$0]!))" }.joined(separator: ", "))
        }
        if l.aliasHistory.isEmpty {
            if l.model != nil { Output.line("aliases never moved to it") }
        } else {
            Output.line("alias moves:")
            for change in l.aliasHistory {
                Output.line("  \(format.string(from: change.time)) \(change.name) \(change.alias): \(change.previous ?? "-") → \(change.version ?? "removed") (\(change.reason))")
            }
        }
        Output.line("config (secrets masked):")
        if let data = try? Self.prettyEncoder.encode(l.config) {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") { Output.line("  " + line) }
        }
    }

    static let prettyEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func show(_ value: JSONValue) -> String {
        (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
    }
}

/// `yard rerun JOB|NAME@vN`: the same job again, then (with --wait) its
/// final metrics beside the original's.
struct RerunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rerun",
        abstract: "Submit a job again with the same config, seed, dataset version and starting weights; with --wait, compare the final metrics.")

    @Argument(help: "A job id, or a registered model version as NAME@vN (its job is rerun).") var reference: String?
    @Flag(help: "Follow the rerun until it ends, then print both runs' final metrics side by side.") var wait = false
    @Flag(help: "Train on the dataset's latest version instead of the pinned one.") var onLatestData = false
    @Option(help: "Run the record of a bundle (`yard lineage REF --bundle`) on this server: the same config and seed, on the dataset version with the bundle's DVC hash.")
    var fromBundle: String?
    @Option(help: "With --from-bundle: train on this (dataset:NAME, or a path) instead of the bundle's dataset; a registered dataset must have a version with the bundle's DVC hash.")
    var data: String?
    @Option(help: "How far apart final metrics may be and still agree (default 0.005; exact when both ran on a CPU).") var tolerance: Double?
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await reporting {
            if let tolerance, !(tolerance >= 0 && tolerance.isFinite) {
                throw YardError.invalid("--tolerance", "must be a number of at least 0, got \(tolerance)")
            }
            let original: Lineage, rerunID: String
            switch (reference, fromBundle) {
            case (let reference?, nil):
                guard data == nil else { throw YardError.invalid("--data", "only with --from-bundle; a rerun here trains on the pinned version (or --on-latest-data)") }
                original = try await server.client.get(LineageCommand.path(reference), as: Lineage.self)
                let query = onLatestData ? "?on_latest_data=true" : ""
                let body = try await server.client.send(.POST, "/api/jobs/\(original.job.id)/rerun\(query)")
                let rerun = try APIClient.decoder.decode(Job.self, from: body)
                rerunID = rerun.id
                Output.line("rerun of \(original.job.id) submitted as \(rerun.id) (seed \(rerun.config["train"]?["seed"]?.intValue.map(String.init) ?? "-"), data \(rerun.config["train"]?["data"]?.stringValue ?? "-"))")
            case (nil, let path?):
                guard !onLatestData else { throw YardError.invalid("--on-latest-data", "not with --from-bundle; give --data dataset:NAME to choose the data") }
                let bundle = try LineageBundleFile(path: path)
                original = try bundle.lineage
                rerunID = try await BundleRerun(client: server.client, bundle: bundle, original: original, data: data).submit()
            default:
                throw YardError.invalid("reference", "give a job id or NAME@vN, or --from-bundle FILE (not both)")
            }
            for warning in await Self.workerWarnings(original, client: server.client) { Output.warning(warning) }
            guard wait else { return Output.line("compare later with: yard lineage \(rerunID)") }
            try await WaitForJob(client: server.client, jobID: rerunID).run()
            let again = try await server.client.get(LineageCommand.path(rerunID), as: Lineage.self)
            let comparison = RunComparison(original: original, rerun: again, tolerance: tolerance)
            for warning in comparison.warnings { Output.warning(warning) }
            comparison.printTable()
            Output.line(comparison.verdict)
            if !comparison.agree { throw ExitCode(1) }
        }
    }
}

extension RerunCommand {
    /// Before it runs: the live workers whose engine (Python, torch,
    /// Ultralytics) is not the one the original ran with. Unknown when the
    /// server lists no versions; never an error (the rerun is submitted).
    static func workerWarnings(_ original: Lineage, client: APIClient) async -> [String] {
        struct Workers: Decodable {
            struct Worker: Decodable { var id: String; var status: String; var versions: [String: String]? }
            var workers: [Worker]
        }
        guard let workers = try? await client.get("/api/workers", as: Workers.self).workers else { return [] }
        return workers.filter { $0.status != "lost" }.compactMap { worker in
            let differing = ["python", "torch", "ultralytics"].filter { key in
                guard let then = original.engine[key], let there = worker.versions?[key] else { return false }
                return then != there
            }
            guard !differing.isEmpty else { return nil }
            return "worker \(worker.id) has " + differing.map { "\($0) \(worker.versions![$0]!) (the original ran \(original.engine[$0]!))" }.joined(separator: ", ")
                + "; a rerun there may not give the same numbers"
        }
    }
}

/// Two runs' final metrics side by side, and whether they agree.
struct RunComparison {
    let original: Lineage
    let rerun: Lineage
    /// Exact (0) when both ran on a CPU and none was given.
    let tolerance: Double

    init(original: Lineage, rerun: Lineage, tolerance: Double?) {
        self.original = original
        self.rerun = rerun
        let cpu = [original.device, rerun.device].allSatisfy { $0?.lowercased() == "cpu" }
        self.tolerance = tolerance ?? (cpu ? 0 : 0.005)
    }

    /// The final metrics, and the last epoch's losses and learning rates
    /// (final metrics of a short run can all be 0; its losses never are).
    static func numbers(_ lineage: Lineage) -> [String: Double] {
        (lineage.lastEpoch ?? [:]).merging(lineage.metrics ?? [:]) { $1 }
    }

    var names: [String] {
        Set(Self.numbers(original).keys).union(Self.numbers(rerun).keys).sorted()
    }

    /// Numbers one run lacks, or that differ by more than the tolerance.
    var differing: [String] {
        let a = Self.numbers(original), b = Self.numbers(rerun)
        return names.filter { name in
            guard let x = a[name], let y = b[name] else { return true }
            return abs(x - y) > tolerance
        }
    }

    var agree: Bool { !names.isEmpty && differing.isEmpty }

    var warnings: [String] {
        var lines: [String] = []
        for key in Set(original.engine.keys).union(rerun.engine.keys).sorted() where original.engine[key] != rerun.engine[key] {
            lines.append("engine \(key) differs: \(original.engine[key] ?? "-") then, \(rerun.engine[key] ?? "-") now")
        }
        if original.device != rerun.device { lines.append("device differs: \(original.device ?? "-") then, \(rerun.device ?? "-") now") }
        if original.dataset.hash != rerun.dataset.hash {
            lines.append("dataset differs: DVC hash \(original.dataset.hash ?? "-") then, \(rerun.dataset.hash ?? "-") now")
        }
        return lines
    }

    func printTable() {
        func show(_ value: Double?) -> String { value.map { String(format: "%.6f", $0) } ?? "-" }
        let first = Self.numbers(original), second = Self.numbers(rerun)
        Table.print(header: ["METRIC", original.job.id, rerun.job.id, "DIFF"], rows: names.map { name in
            let a = first[name], b = second[name]
            return [name, show(a), show(b), a.flatMap { a in b.map { String(format: "%+.6f", $0 - a) } } ?? "-"]
        })
    }

    var verdict: String {
        let within = tolerance == 0 ? "exactly" : "within \(tolerance)"
        if names.isEmpty { return "no final metrics to compare" }
        if agree { return "the final metrics and the last epoch agree \(within)" }
        return "the final metrics or the last epoch differ (\(differing.count) of \(names.count) not \(within): \(differing.prefix(4).joined(separator: ", ")))"
    }
}
