import Foundation
import GRDB
import YardDomain
import YardStore

/// `yard gc`: frees what no one needs any more, reading what references
/// what from the store (as it is now; the server may be running):
///
/// - a finished job (succeeded, failed, stopped, pruned) older than
///   `olderThan` and not among the `keepLast` newest: its run folder
///   (`runs/ID`, but `weights/best.pt` of a job with a registered version
///   stays), its scratch (`jobs/ID`) and its checkpoints in the artifact
///   folder (`last.pt`, `epochN.pt`; `best.pt`, results and plots stay);
///   folders of a job the store no longer has are judged by their age;
/// - weights in the model cache (`models/sha256`) that no registered
///   version or export names;
/// - dataset objects that no version on disk lists, and half-made versions.
///
/// Never touched: anything of a queued, running or stopping job (checked
/// again just before each removal), the weights of a registered version,
/// a dataset version (recorded versions are what jobs and models name),
/// and anything made in the last `grace` (an add or fetch in progress).
public struct RetentionOptions: Sendable {
    public var dataDirectory: String
    public var olderThan: TimeInterval = 30 * 86400
    public var keepLast = 0
    public var dryRun = false
    public var now = Date()
    /// Unreferenced cache files younger than this stay (a fetch or dataset add may be about to name them).
    public var grace: TimeInterval = 600

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    /// `30d`, `12h`, `90m`, `45s`, `0`.
    public static func parseAge(_ text: String) throws -> TimeInterval {
        let units: [Character: Double] = ["d": 86400, "h": 3600, "m": 60, "s": 1]
        if text == "0" { return 0 }
        guard let unit = text.last, let factor = units[unit], let value = Double(text.dropLast()), value >= 0, value.isFinite else {
            throw YardError(.invalidInput, field: "--older-than", "--older-than must be a number with d, h, m or s (e.g. 30d), not \(text)")
        }
        return value * factor
    }
}

public struct RetentionResult: Sendable {
    public struct Removal: Sendable {
        /// Relative to the data dir.
        public var path: String
        public var files: Int
        /// Bytes freed (a file with other hard links frees none).
        public var bytes: Int64
        public var reason: String
    }

    public var removals: [Removal]
    public var dryRun: Bool
    public var files: Int { removals.reduce(0) { $0 + $1.files } }
    public var bytes: Int64 { removals.reduce(0) { $0 + $1.bytes } }
}

public enum Retention {
    struct JobInfo {
        var state: JobState
        var finished: Date
    }

    struct References {
        var jobs: [String: JobInfo] = [:]
        /// Jobs with a registered version: their best.pt stays.
        var registeredJobs = Set<String>()
        /// Hashes of registered weights and exports.
        var weights = Set<String>()
    }

    public static func run(_ options: RetentionOptions) throws -> RetentionResult {
        let data = URL(fileURLWithPath: options.dataDirectory).standardizedFileURL.path
        let database = data + "/" + Backup.databaseName
        guard FileManager.default.fileExists(atPath: database) else {
            throw YardError(.notFound, field: "--data-dir", "--data-dir: \(data) holds no Trainyard database (\(Backup.databaseName)); pass the data dir of `yard up`")
        }
        let store = try openStore(database)
        let refs = try references(store)
        let cutoff = options.now.addingTimeInterval(-options.olderThan)
        let graceCutoff = options.now.addingTimeInterval(-options.grace)
        let newest = Set(refs.jobs.filter { $0.value.state.isTerminal }.sorted { $0.value.finished > $1.value.finished }
            .prefix(max(0, options.keepLast)).map(\.key))
        var plan = Plan(data: data, dryRun: options.dryRun)

        // Jobs' folders.
        var ids = Set<String>()
        for folder in ["runs", "jobs", "artifacts"] { ids.formUnion(plan.names(in: folder)) }
        for id in ids.sorted() where !id.hasPrefix(".") && !id.hasPrefix("_") {
            let reason: String
            if let job = refs.jobs[id] {
                guard job.state.isTerminal, job.finished < cutoff, !newest.contains(id) else { continue }
                reason = "job \(job.state.rawValue) \(age(options.now.timeIntervalSince(job.finished)))"
            } else {
                let mtimes = ["runs", "jobs", "artifacts"].compactMap { plan.mtime("\($0)/\(id)") }
                guard let latest = mtimes.max(), latest < cutoff else { continue }
                reason = "no job \(id) in the store, untouched \(age(options.now.timeIntervalSince(latest)))"
            }
            // Read again just before: a job resumed meanwhile keeps everything.
            let confirm: () -> Bool = {
                do { return try currentState(store, id).map(\.isTerminal) ?? true } catch { return false }
            }
            let keepBest = refs.registeredJobs.contains(id)
            plan.remove("runs/\(id)", reason: reason + (keepBest ? " (best.pt of its registered version kept)" : ""), confirm: confirm) { relative in
                !(keepBest && relative == "runs/\(id)/weights/best.pt")
            }
            plan.remove("jobs/\(id)", reason: reason, confirm: confirm) { _ in true }
            plan.remove("artifacts/\(id)", reason: reason + ": checkpoints", confirm: confirm, keepFolders: true) { Backup.isCheckpoint($0) }
        }

        // The model cache: weights no version or export names.
        for shard in plan.names(in: "models/sha256") {
            for name in plan.names(in: "models/sha256/\(shard)") {
                let hash = String(name.prefix { $0 != "." })
                let relative = "models/sha256/\(shard)/\(name)"
                guard !refs.weights.contains(hash), plan.changed(relative).map({ $0 < graceCutoff }) ?? false else { continue }
                plan.remove(relative, reason: "weights no registered version names", confirm: { !((try? weightsReferenced(store, hash)) ?? true) }) { _ in true }
            }
        }
        if let changed = plan.changed("models/tmp"), changed < graceCutoff {
            plan.remove("models/tmp", reason: "half-made fetches and exports", confirm: { true }) { _ in true }
        }

        // Dataset objects no version on disk lists; versions left half-made.
        let (listed, linked) = datasetReferences(data)
        // An add writes its version under .tmp- for as long as it takes (hours, for millions of files): a day untouched.
        let abandoned = options.now.addingTimeInterval(-max(options.grace, 86400))
        for version in plan.names(in: "datasets/versions") where version.hasPrefix(".tmp-") {
            guard let modified = plan.mtime("datasets/versions/\(version)"), modified < abandoned else { continue }
            plan.remove("datasets/versions/\(version)", reason: "a dataset add that never finished", confirm: { true }) { _ in true }
        }
        for shard in plan.names(in: "datasets/objects") {
            for name in plan.names(in: "datasets/objects/\(shard)") {
                let relative = "datasets/objects/\(shard)/\(name)"
                var st = stat()
                guard lstat(data + "/" + relative, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
                let md5 = shard + name
                guard !listed.contains(md5), !linked.contains("\(st.st_dev):\(st.st_ino)") else { continue }
                // ctime: a hard link made by an add in progress renews it, an old mtime does not matter.
                guard Date(timeIntervalSince1970: TimeInterval(st.st_ctim.tv_sec)) < graceCutoff,
                      Date(timeIntervalSince1970: TimeInterval(st.st_mtim.tv_sec)) < graceCutoff else { continue }
                plan.remove(relative, reason: "a dataset object no version lists", confirm: { true }) { _ in true }
            }
        }
        return RetentionResult(removals: plan.removals, dryRun: options.dryRun)
    }

    static func openStore(_ path: String) throws -> DatabaseQueue {
        do {
            var config = Configuration()
            config.readonly = true
            config.busyMode = .timeout(30)
            return try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw YardError(.unavailable, field: "--data-dir", "cannot open the store \(path): \(error)")
        }
    }

    static func references(_ store: DatabaseQueue) throws -> References {
        do {
            return try store.read { db in
                var refs = References()
                for row in try Row.fetchAll(db, sql: "SELECT id, state, record FROM job") {
                    let id: String = row["id"]
                    let record = try JSONCoding.decode(Job.self, row["record"] as String)
                    let state = JobState(rawValue: row["state"] as String) ?? record.state
                    refs.jobs[id] = JobInfo(state: state, finished: record.finishedAt ?? record.createdAt)
                }
                for text in try String.fetchAll(db, sql: "SELECT record FROM model_version") {
                    let version = try JSONCoding.decode(ModelVersion.self, text)
                    refs.registeredJobs.insert(version.jobID)
                    if let hash = version.sha256 { refs.weights.insert(hash) }
                    for export in (version.exports ?? [:]).values { refs.weights.insert(export.sha256) }
                }
                return refs
            }
        } catch {
            throw YardError(.unavailable, field: "--data-dir", "cannot read the store: \(error)")
        }
    }

    static func currentState(_ store: DatabaseQueue, _ id: String) throws -> JobState? {
        try store.read { db in try String.fetchOne(db, sql: "SELECT state FROM job WHERE id = ?", arguments: [id]) }.flatMap(JobState.init(rawValue:))
    }

    static func weightsReferenced(_ store: DatabaseQueue, _ hash: String) throws -> Bool {
        try store.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM model_version WHERE record LIKE ?)", arguments: ["%\(hash)%"]) } ?? true
    }

    /// md5s every version's manifest lists, and the inodes in every
    /// version's tree (a half-made one has no manifest yet).
    static func datasetReferences(_ data: String) -> (Set<String>, Set<String>) {
        let fm = FileManager.default
        let versions = data + "/datasets/versions"
        var listed = Set<String>(), linked = Set<String>()
        for version in (try? fm.contentsOfDirectory(atPath: versions)) ?? [] {
            if let raw = fm.contents(atPath: "\(versions)/\(version)/manifest.json"),
               let entries = try? JSONDecoder().decode([ManifestMD5].self, from: raw) {
                listed.formUnion(entries.map(\.md5))
            }
            let tree = "\(versions)/\(version)/tree"
            guard let walker = fm.enumerator(atPath: tree) else { continue }
            while let relative = walker.nextObject() as? String {
                var st = stat()
                if lstat("\(tree)/\(relative)", &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { linked.insert("\(st.st_dev):\(st.st_ino)") }
            }
        }
        return (listed, linked)
    }

    struct ManifestMD5: Decodable { var md5: String }

    static func age(_ seconds: TimeInterval) -> String {
        seconds >= 86400 ? "\(Int(seconds / 86400)) days ago" : seconds >= 3600 ? "\(Int(seconds / 3600)) hours ago" : "\(Int(seconds / 60)) minutes ago"
    }

    /// What is removed (or would be), counted as it goes.
    struct Plan {
        let data: String
        let dryRun: Bool
        var removals: [RetentionResult.Removal] = []

        func names(in relative: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: data + "/" + relative)) ?? []).sorted()
        }

        func mtime(_ relative: String) -> Date? {
            var st = stat()
            guard lstat(data + "/" + relative, &st) == 0 else { return nil }
            return Date(timeIntervalSince1970: TimeInterval(st.st_mtim.tv_sec))
        }

        /// The later of mtime and ctime.
        func changed(_ relative: String) -> Date? {
            var st = stat()
            guard lstat(data + "/" + relative, &st) == 0 else { return nil }
            return Date(timeIntervalSince1970: TimeInterval(max(st.st_mtim.tv_sec, st.st_ctim.tv_sec)))
        }

        /// Removes the files under `relative` that `select` picks (the
        /// folders left empty too unless `keepFolders`), after `confirm`.
        mutating func remove(_ relative: String, reason: String, confirm: () -> Bool, keepFolders: Bool = false,
                             select: (String) -> Bool) {
            let root = data + "/" + relative
            var st = stat()
            guard lstat(root, &st) == 0 else { return }
            var files: [(String, Int64)] = []
            var folders: [String] = []
            if (st.st_mode & S_IFMT) == S_IFDIR {
                var pending = [relative]
                while let folder = pending.popLast() {
                    folders.append(folder)
                    for name in names(in: folder) {
                        let path = folder + "/" + name
                        var entry = stat()
                        guard lstat(data + "/" + path, &entry) == 0 else { continue }
                        if (entry.st_mode & S_IFMT) == S_IFDIR { pending.append(path); continue }
                        guard select(path) else { continue }
                        files.append((path, entry.st_nlink > 1 ? 0 : Int64(entry.st_size)))
                    }
                }
            } else if select(relative) {
                files.append((relative, st.st_nlink > 1 ? 0 : Int64(st.st_size)))
            }
            guard !files.isEmpty || (!keepFolders && folders.count > 0 && files.isEmpty && isEmptyTree(relative)) else { return }
            guard confirm() else { return }
            if !dryRun {
                for (path, _) in files { unlink(data + "/" + path) }
                if !keepFolders { for folder in folders.reversed() { rmdir(data + "/" + folder) } }
            }
            removals.append(.init(path: relative, files: files.count, bytes: files.reduce(0) { $0 + $1.1 }, reason: reason))
        }

        func isEmptyTree(_ relative: String) -> Bool {
            guard let walker = FileManager.default.enumerator(atPath: data + "/" + relative) else { return false }
            while let item = walker.nextObject() as? String {
                var st = stat()
                if lstat(data + "/" + relative + "/" + item, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR { return false }
            }
            return true
        }
    }
}

/// `yard up|server --gc-at HH:MM`: `yard gc` run by the server once a day
/// at that local time (a quiet hour), with `--gc-older-than` and
/// `--gc-keep-last` as `yard gc` takes them.
public struct RetentionSchedule: Sendable, Hashable {
    public var hour: Int
    public var minute: Int
    public var olderThan: TimeInterval = 30 * 86400
    public var keepLast = 0

    public init(hour: Int, minute: Int) {
        self.hour = hour
        self.minute = minute
    }

    /// `03:00`, `3:30`, `23:59`.
    public static func parse(_ text: String) throws(YardError) -> RetentionSchedule {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...2).contains(parts[0].count), parts[1].count == 2,
              let hour = Int(parts[0]), let minute = Int(parts[1]), (0...23).contains(hour), (0...59).contains(minute) else {
            throw YardError(.invalidInput, field: "--gc-at", "--gc-at must be a local time of day as HH:MM (e.g. 03:00)")
        }
        return RetentionSchedule(hour: hour, minute: minute)
    }

    /// The first time of day HH:MM strictly after `date` (tomorrow's when today's has passed).
    public func next(after date: Date, calendar: Calendar = .current) -> Date {
        let components = DateComponents(hour: hour, minute: minute, second: 0)
        return calendar.nextDate(after: date, matching: components, matchingPolicy: .nextTime) ?? date.addingTimeInterval(86400)
    }

    public func options(dataDirectory: String, now: Date = Date()) -> RetentionOptions {
        var options = RetentionOptions(dataDirectory: dataDirectory)
        options.olderThan = olderThan
        options.keepLast = keepLast
        options.now = now
        return options
    }
}
