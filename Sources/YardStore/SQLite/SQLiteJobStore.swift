import Foundation
import GRDB
import YardDomain

/// The embedded store driver: GRDB over the `YardDatabase` file. With a
/// `SecretBox`, a job's secrets are sealed (AES-GCM) before they are written.
/// Events and log lines are published on `feed` once committed, from the
/// writer's queue, so subscribers get them in commit order.
public struct SQLiteJobStore: JobStore {
    let db: YardDatabase
    let box: SecretBox?
    let now: @Sendable () -> Date
    public let feed: JobFeed
    /// Events appended on their own share commits.
    let groupCommit: EventGroupCommit

    public init(database: YardDatabase, secrets box: SecretBox? = nil, feed: JobFeed = JobFeed(),
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.db = database
        self.box = box
        self.feed = feed
        self.now = now
        self.groupCommit = EventGroupCommit(db: database, feed: feed, now: now)
    }

    public func insert(_ job: Job, secrets: [String: JSONValue], recording state: JSONValue?) async throws {
        let record = try JSONCoding.string(job)
        let secretText = try sealed(secrets)
        let time = now()
        let feed = self.feed
        try await db.write { db in
            // Ids are unique regardless of case: they name folders and runs.
            if let existing = try String.fetchOne(db, sql: "SELECT id FROM job WHERE id = ? COLLATE NOCASE", arguments: [job.id]) {
                throw YardError.duplicateJob(job.id, existing: existing)
            }
            try db.execute(sql: "INSERT INTO job (id, state, created_at, record) VALUES (?, ?, ?, ?)",
                           arguments: [job.id, job.state.rawValue, job.createdAt.timeIntervalSince1970, record])
            try db.execute(sql: "INSERT INTO job_secret (job_id, secrets) VALUES (?, ?)", arguments: [job.id, secretText])
            if let state { _ = try Self.insertEvent(db, jobID: job.id, type: "state", payload: state, time: time, feed: feed) }
        }
    }

    public func job(_ id: String) async throws -> Job? {
        let text = try await db.read { db in try String.fetchOne(db, sql: "SELECT record FROM job WHERE id = ?", arguments: [id]) }
        return try text.map { try JSONCoding.decode(Job.self, $0) }
    }

    /// Walks `job_by_created` newest first and stops at the limit, so a
    /// page costs the same with 100,000 jobs as with 100 (a rare filter
    /// value reads further). A `before` that names no job gives no page.
    public func jobs(_ query: JobQuery) async throws -> [Job] {
        let texts = try await db.read { db in
            try String.fetchAll(db, sql: """
                SELECT record FROM job
                WHERE (?1 IS NULL OR state = ?1) AND (?3 IS NULL OR owner = ?3) AND (?4 IS NULL OR experiment = ?4)
                  AND (?5 IS NULL OR json_extract(record, '$.model') = ?5)
                  AND (?6 IS NULL OR json_extract(record, '$.dataset') = ?6
                       OR substr(json_extract(record, '$.dataset'), 1, length(?6) + 1) = ?6 || '@')
                  AND (?7 IS NULL OR (created_at, id) < (SELECT created_at, id FROM job WHERE id = ?7))
                ORDER BY created_at DESC, id DESC LIMIT ?2
                """, arguments: [query.state?.rawValue, query.limit, query.owner, query.experiment, query.model, query.dataset, query.before])
        }
        return try texts.map { try JSONCoding.decode(Job.self, $0) }
    }

    public func jobCounts() async throws -> [JobState: Int] {
        let rows = try await db.read { db in
            try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM job GROUP BY state").map { ($0["state"] as String, $0["n"] as Int) }
        }
        var counts: [JobState: Int] = [:]
        for (state, count) in rows { if let state = JobState(rawValue: state) { counts[state] = count } }
        return counts
    }

    public func jobGauges() async throws -> JobGauges {
        try await db.read { db in
            var gauges = JobGauges()
            let rows = try Row.fetchAll(db, sql: """
                SELECT state, experiment, COUNT(*) AS n FROM job GROUP BY state, experiment
                """)
            for row in rows {
                guard let state = JobState(rawValue: row["state"]) else { continue }
                gauges.counts[.init(state: state, experiment: row["experiment"] ?? ""), default: 0] += row["n"] as Int
            }
            // A queued job's last state event says when it was queued (state events are never pruned).
            gauges.queuedSince = try Double.fetchAll(db, sql: """
                SELECT COALESCE((SELECT MAX(time) FROM event WHERE entity = 'job' AND job_id = job.id AND type = 'state'), created_at) AS since
                FROM job WHERE state = 'queued' ORDER BY since
                """).map { Date(timeIntervalSince1970: $0) }
            return gauges
        }
    }

    public func jobs(in states: Set<JobState>) async throws -> [Job] {
        let names = states.map(\.rawValue)
        let texts = try await db.read { db in
            let marks = databaseQuestionMarks(count: names.count)
            return try String.fetchAll(db, sql: "SELECT record FROM job WHERE state IN (\(marks)) ORDER BY created_at",
                                       arguments: StatementArguments(names))
        }
        return try texts.map { try JSONCoding.decode(Job.self, $0) }
    }

    @discardableResult
    public func update(_ id: String, _ change: @escaping @Sendable (inout Job) throws -> Void) async throws -> Job {
        try await db.write { db in
            guard let text = try String.fetchOne(db, sql: "SELECT record FROM job WHERE id = ?", arguments: [id]) else {
                throw YardError(.notFound, field: "id", "no job \(id); `yard jobs` lists them")
            }
            var job = try JSONCoding.decode(Job.self, text)
            try change(&job)
            try db.execute(sql: "UPDATE job SET state = ?, record = ? WHERE id = ?",
                           arguments: [job.state.rawValue, try JSONCoding.string(job), id])
            return job
        }
    }

    public func update(_ id: String, recording type: String,
                       _ change: @escaping @Sendable (inout Job) throws -> JSONValue) async throws -> (Job, JobEvent) {
        let time = now()
        let feed = self.feed
        return try await db.write { db in
            guard let text = try String.fetchOne(db, sql: "SELECT record FROM job WHERE id = ?", arguments: [id]) else {
                throw YardError(.notFound, field: "id", "no job \(id); `yard jobs` lists them")
            }
            var job = try JSONCoding.decode(Job.self, text)
            let payload = try change(&job)
            try db.execute(sql: "UPDATE job SET state = ?, record = ? WHERE id = ?",
                           arguments: [job.state.rawValue, try JSONCoding.string(job), id])
            let event = try Self.insertEvent(db, jobID: id, type: type, payload: payload, time: time, feed: feed)
            return (job, event)
        }
    }

    public func apply(_ writes: [JobWrite]) async throws -> [JobWrite.Result] {
        guard !writes.isEmpty else { return [] }
        let time = now()
        let feed = self.feed
        return try await db.write { db in
            try writes.map { write -> JobWrite.Result in
                guard let text = try String.fetchOne(db, sql: "SELECT record FROM job WHERE id = ?", arguments: [write.id]) else { return .missing }
                var job = try JSONCoding.decode(Job.self, text)
                let records: [JobRecord]
                do {
                    guard let returned = try write.change(&job) else { return .skipped }
                    records = returned
                } catch {
                    return .failed(error)
                }
                try db.execute(sql: "UPDATE job SET state = ?, record = ? WHERE id = ?",
                               arguments: [job.state.rawValue, try JSONCoding.string(job), write.id])
                for record in records {
                    switch record {
                    case .event(let type, let payload): _ = try Self.insertEvent(db, jobID: write.id, type: type, payload: payload, time: time, feed: feed)
                    case .logs(let lines): if !lines.isEmpty { _ = try Self.insertLogs(db, jobID: write.id, lines: lines, feed: feed) }
                    case .epoch(let epoch): try Self.insertEpoch(db, epoch)
                    case .artifact(let artifact): try Self.insertArtifact(db, artifact)
                    }
                }
                return .applied(job)
            }
        }
    }

    public func secrets(of id: String) async throws -> [String: JSONValue] {
        let text = try await db.read { db in
            try String.fetchOne(db, sql: "SELECT secrets FROM job_secret WHERE job_id = ?", arguments: [id])
        }
        return try text.map(opened) ?? [:]
    }

    private func sealed(_ secrets: [String: JSONValue]) throws -> String {
        let text = try JSONCoding.string(secrets)
        return box?.seal(text) ?? text
    }

    private func opened(_ text: String) throws -> [String: JSONValue] {
        guard SecretBox.isSealed(text) else { return try JSONCoding.decode([String: JSONValue].self, text) }
        guard let box else { throw YardError(.unavailable, field: "secret key", "job secrets are sealed but no secret key is loaded") }
        return try JSONCoding.decode([String: JSONValue].self, try box.openText(text))
    }

    /// Seals every stored secret with the box's first key: plain rows left by
    /// an older version, and rows sealed with an older key (rotation). All
    /// rows change in one transaction; the old bytes are then checkpointed
    /// out of the WAL and vacuumed out of the file. Returns how many changed.
    @discardableResult
    public func resealSecrets() async throws -> Int {
        guard let box else { return 0 }
        let current = box.keys[0].id
        let changed = try await db.write { db -> Int in
            var count = 0
            for row in try Row.fetchAll(db, sql: "SELECT job_id, secrets FROM job_secret") {
                let text: String = row["secrets"]
                if text.hasPrefix(SecretBox.prefix + current + ":") { continue }
                let secrets = try opened(text)
                try db.execute(sql: "UPDATE job_secret SET secrets = ? WHERE job_id = ?", arguments: [try sealed(secrets), row["job_id"] as String])
                count += 1
            }
            return count
        }
        if changed > 0 {
            try await db.writeWithoutTransaction { db in
                try db.execute(sql: "VACUUM")
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
        }
        return changed
    }

    public func recordEpoch(_ epoch: EpochRecord) async throws {
        try await db.write { db in try Self.insertEpoch(db, epoch) }
    }

    private static func insertEpoch(_ db: Database, _ epoch: EpochRecord) throws {
        try db.execute(sql: """
            INSERT INTO epoch (job_id, epoch, metrics, seconds) VALUES (?, ?, ?, ?)
            ON CONFLICT(job_id, epoch) DO UPDATE SET metrics = excluded.metrics, seconds = excluded.seconds
            """, arguments: [epoch.jobID, epoch.epoch, try JSONCoding.string(epoch.metrics), epoch.seconds])
    }

    public func epochs(of id: String) async throws -> [EpochRecord] {
        try await db.read { db in
            try Row.fetchAll(db, sql: "SELECT epoch, metrics, seconds FROM epoch WHERE job_id = ? ORDER BY epoch", arguments: [id]).map { row in
                EpochRecord(jobID: id, epoch: row["epoch"], metrics: try JSONCoding.decode([String: Double].self, row["metrics"]),
                            seconds: row["seconds"])
            }
        }
    }

    public func recordArtifact(_ artifact: ArtifactRecord) async throws {
        try await db.write { db in try Self.insertArtifact(db, artifact) }
    }

    private static func insertArtifact(_ db: Database, _ artifact: ArtifactRecord) throws {
        try db.execute(sql: """
            INSERT INTO artifact (job_id, key, kind, size) VALUES (?, ?, ?, ?)
            ON CONFLICT(job_id, key) DO UPDATE SET kind = excluded.kind, size = excluded.size
            """, arguments: [artifact.jobID, artifact.key, artifact.kind, artifact.size])
    }

    public func artifacts(of id: String) async throws -> [ArtifactRecord] {
        try await db.read { db in
            try Row.fetchAll(db, sql: "SELECT key, kind, size FROM artifact WHERE job_id = ? ORDER BY key", arguments: [id])
                .map { ArtifactRecord(jobID: id, key: $0["key"], kind: $0["kind"], size: $0["size"]) }
        }
    }

    @discardableResult
    public func appendEvent(jobID: String, type: String, payload: JSONValue) async throws -> JobEvent {
        try await groupCommit.append(.job, id: jobID, type: type, payload: payload)
    }

    @discardableResult
    public func appendEvent(_ entity: EventEntity, id: String, type: String, payload: JSONValue) async throws -> JobEvent {
        try await groupCommit.append(entity, id: id, type: type, payload: payload)
    }

    /// Inserts an event in the caller's transaction; it is published once
    /// that commits. The one writer commits in id order: the log's sequence.
    static func insertEvent(_ db: Database, jobID: String, type: String, payload: JSONValue, time: Date,
                                    feed: JobFeed, entity: EventEntity = .job) throws -> JobEvent {
        let event = try insertEvent(db, entity: entity, id: jobID, type: type, payload: payload, body: try JSONCoding.string(payload), time: time)
        db.afterNextTransaction(onCommit: { _ in feed.publish([event]) })
        return event
    }

    /// Inserts an event whose payload is already encoded (`body`); the
    /// caller publishes it once its transaction commits. A job's or sweep's
    /// event carries its experiment (`?experiment=` filters on it), read from
    /// the record in the same statement.
    static func insertEvent(_ db: Database, entity: EventEntity, id: String, type: String, payload: JSONValue, body: String,
                            time: Date) throws -> JobEvent {
        let statement = try db.cachedStatement(sql: """
            INSERT INTO event (entity, job_id, type, payload, time, experiment) VALUES (?1, ?2, ?3, ?4, ?5, CASE ?1
              WHEN 'job' THEN (SELECT json_extract(record, '$.experiment') FROM job WHERE id = ?2)
              WHEN 'sweep' THEN (SELECT json_extract(record, '$.experiment') FROM sweep WHERE id = ?2) END)
            RETURNING experiment
            """)
        let experiment = try String.fetchOne(statement, arguments: [entity.rawValue, id, type, body, time.timeIntervalSince1970])
        return JobEvent(id: db.lastInsertedRowID, jobID: id, type: type, payload: payload, time: time, entity: entity, experiment: experiment)
    }

    private static func event(_ row: Row) throws -> JobEvent {
        JobEvent(id: row["id"], jobID: row["job_id"], type: row["type"], payload: try JSONCoding.decode(JSONValue.self, row["payload"]),
                 time: Date(timeIntervalSince1970: row["time"]), entity: EventEntity(rawValue: row["entity"]) ?? .job,
                 experiment: row["experiment"])
    }

    public func events(of id: String, after: Int64, limit: Int) async throws -> [JobEvent] {
        try await db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, entity, job_id, type, payload, time, experiment FROM event WHERE entity = 'job' AND job_id = ? AND id > ? ORDER BY id LIMIT ?
                """, arguments: [id, after, limit]).map(Self.event)
        }
    }

    public func events(after: Int64, limit: Int, filter: EventFilter) async throws -> [JobEvent] {
        var sql = "SELECT id, entity, job_id, type, payload, time, experiment FROM event WHERE id > ?"
        var arguments: StatementArguments = [after]
        if let entity = filter.entity { sql += " AND entity = ?"; arguments += [entity.rawValue] }
        if let id = filter.id { sql += " AND job_id = ?"; arguments += [id] }
        if !filter.types.isEmpty {
            sql += " AND type IN (\(Array(repeating: "?", count: filter.types.count).joined(separator: ",")))"
            arguments += StatementArguments(filter.types.sorted())
        }
        if let state = filter.state { sql += " AND type = 'state' AND json_extract(payload, '$.state') = ?"; arguments += [state] }
        if let experiment = filter.experiment { sql += " AND experiment = ?"; arguments += [experiment] }
        sql += " ORDER BY id LIMIT ?"
        arguments += [limit]
        let query = sql, values = arguments
        return try await db.read { db in try Row.fetchAll(db, sql: query, arguments: values).map(Self.event) }
    }

    public func pruneEvents(before: Date) async throws -> Int {
        let types = EventRetention.prunableTypes.sorted()
        let marks = Array(repeating: "?", count: types.count).joined(separator: ",")
        return try await db.write { db in
            let arguments = StatementArguments(types) + [before.timeIntervalSince1970]
            let condition = "entity = 'job' AND type IN (\(marks)) AND time < ?"
            guard let highest = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM event WHERE \(condition)", arguments: arguments) else { return 0 }
            try db.execute(sql: "DELETE FROM event WHERE \(condition)", arguments: arguments)
            let removed = db.changesCount
            try db.execute(sql: """
                INSERT INTO event_floor (only, seq) VALUES (1, ?) ON CONFLICT(only) DO UPDATE SET seq = MAX(seq, excluded.seq)
                """, arguments: [highest])
            return removed
        }
    }

    public func eventFloor() async throws -> Int64 {
        try await db.read { db in try Int64.fetchOne(db, sql: "SELECT seq FROM event_floor WHERE only = 1") ?? 0 }
    }

    public func eventHead() async throws -> Int64 {
        try await db.read { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(COALESCE((SELECT MAX(id) FROM event), 0), COALESCE((SELECT seq FROM event_floor WHERE only = 1), 0))") ?? 0
        }
    }

    @discardableResult
    public func appendLog(jobID: String, lines: [String]) async throws -> [LogLine] {
        guard !lines.isEmpty else { return [] }
        let feed = self.feed
        return try await db.write { db in try Self.insertLogs(db, jobID: jobID, lines: lines, feed: feed) }
    }

    /// Inserts log lines; they are published once their transaction commits.
    private static func insertLogs(_ db: Database, jobID: String, lines: [String], feed: JobFeed) throws -> [LogLine] {
        let statement = try db.cachedStatement(sql: "INSERT INTO log (job_id, line) VALUES (?, ?)")
        var stored: [LogLine] = []
        for line in lines.map({ LogLine.bounded($0) }) {
            try statement.execute(arguments: [jobID, line])
            stored.append(LogLine(id: db.lastInsertedRowID, line: line))
        }
        db.afterNextTransaction(onCommit: { [stored] _ in feed.publish(logs: stored, of: jobID) })
        return stored
    }

    public func logs(of id: String, after: Int64, limit: Int) async throws -> [LogLine] {
        try await db.read { db in
            try Row.fetchAll(db, sql: "SELECT id, line FROM log WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?", arguments: [id, after, limit])
                .map { LogLine(id: $0["id"], line: $0["line"]) }
        }
    }

    public func logs(of id: String, last count: Int) async throws -> [LogLine] {
        try await db.read { db in
            Array(try Row.fetchAll(db, sql: "SELECT id, line FROM log WHERE job_id = ? ORDER BY id DESC LIMIT ?", arguments: [id, count])
                .map { LogLine(id: $0["id"], line: $0["line"]) }.reversed())
        }
    }

    public func createModelVersion(_ draft: ModelVersion) async throws -> (version: ModelVersion, created: Bool) {
        let time = now(), feed = self.feed
        return try await db.write { db in
            if let text = try String.fetchOne(db, sql: """
                SELECT record FROM model_version WHERE name = ? AND job_id = ? ORDER BY CAST(version AS INTEGER) LIMIT 1
                """, arguments: [draft.name, draft.jobID]) {
                return (try JSONCoding.decode(ModelVersion.self, text), false)
            }
            let last = try Int.fetchOne(db, sql: "SELECT MAX(CAST(version AS INTEGER)) FROM model_version WHERE name = ?", arguments: [draft.name]) ?? 0
            var version = draft
            version.version = String(last + 1)
            version.aliases = []
            try db.execute(sql: "INSERT INTO model_version (name, version, record, created_at, job_id) VALUES (?, ?, ?, ?, ?)",
                           arguments: [version.name, version.version, try JSONCoding.string(version), version.createdAt.timeIntervalSince1970, version.jobID])
            _ = try Self.insertEvent(db, jobID: version.name, type: "version", payload: StoreEvents.modelVersion(version),
                                     time: time, feed: feed, entity: .model)
            return (version, true)
        }
    }

    public func updateModelVersion(name: String, version: String, _ change: @escaping @Sendable (inout ModelVersion) -> Void) async throws -> ModelVersion {
        try await db.write { db in
            guard let text = try String.fetchOne(db, sql: "SELECT record FROM model_version WHERE name = ? AND version = ?", arguments: [name, version]) else {
                throw YardError(.notFound, field: "version", "no version \(version) of model \(name); `yard models list` shows them")
            }
            var record = try JSONCoding.decode(ModelVersion.self, text)
            change(&record)
            record.name = name
            record.version = version
            try db.execute(sql: "UPDATE model_version SET record = ? WHERE name = ? AND version = ?",
                           arguments: [try JSONCoding.string(record), name, version])
            return record
        }
    }

    public func setModelAlias(name: String, alias: String, version: String?, reason: String, by: String?, time: Date) async throws -> AliasChange {
        let feed = self.feed
        return try await db.write { db in
            if let version, try Int.fetchOne(db, sql: "SELECT 1 FROM model_version WHERE name = ? AND version = ?", arguments: [name, version]) == nil {
                throw YardError(.notFound, field: "version", "no version \(version) of model \(name); `yard models list` shows them")
            }
            let previous = try String.fetchOne(db, sql: "SELECT version FROM model_alias WHERE name = ? AND alias = ?", arguments: [name, alias])
            if let version {
                try db.execute(sql: """
                    INSERT INTO model_alias (name, alias, version) VALUES (?, ?, ?)
                    ON CONFLICT(name, alias) DO UPDATE SET version = excluded.version
                    """, arguments: [name, alias, version])
            } else {
                try db.execute(sql: "DELETE FROM model_alias WHERE name = ? AND alias = ?", arguments: [name, alias])
            }
            var change = AliasChange(name: name, alias: alias, version: version, previous: previous, time: time, reason: reason)
            change.by = by
            try db.execute(sql: "INSERT INTO model_alias_history (name, alias, version, previous, time, reason, moved_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [name, alias, version, previous, time.timeIntervalSince1970, reason, by])
            _ = try Self.insertEvent(db, jobID: name, type: "alias", payload: StoreEvents.aliasMoved(change), time: time, feed: feed, entity: .model)
            return change
        }
    }

    public func aliasHistory(name: String, alias: String?, limit: Int) async throws -> [AliasChange] {
        try await db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT name, alias, version, previous, time, reason, moved_by FROM model_alias_history
                WHERE name = ?1 AND (?2 IS NULL OR alias = ?2) ORDER BY id DESC LIMIT ?3
                """, arguments: [name, alias, limit]).map {
                var change = AliasChange(name: $0["name"], alias: $0["alias"], version: $0["version"], previous: $0["previous"],
                                         time: Date(timeIntervalSince1970: $0["time"]), reason: $0["reason"])
                change.by = $0["moved_by"]
                return change
            }
        }
    }

    public func modelSettings(name: String) async throws -> ModelSettings? {
        let text = try await db.read { db in try String.fetchOne(db, sql: "SELECT record FROM model_settings WHERE name = ?", arguments: [name]) }
        return try text.map { try JSONCoding.decode(ModelSettings.self, $0) }
    }

    public func setModelSettings(name: String, _ settings: ModelSettings) async throws {
        let record = try JSONCoding.string(settings)
        try await db.write { db in
            try db.execute(sql: "INSERT INTO model_settings (name, record) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET record = excluded.record",
                           arguments: [name, record])
        }
    }

    public func modelVersions(name: String?) async throws -> [ModelVersion] {
        let (records, aliasRows) = try await db.read { db in
            let records = try String.fetchAll(db, sql: """
                SELECT record FROM model_version WHERE (?1 IS NULL OR name = ?1)
                ORDER BY name, CAST(version AS INTEGER) DESC
                """, arguments: [name])
            let aliases = try Row.fetchAll(db, sql: "SELECT name, alias, version FROM model_alias WHERE (?1 IS NULL OR name = ?1)", arguments: [name])
                .map { (name: $0["name"] as String, alias: $0["alias"] as String, version: $0["version"] as String) }
            return (records, aliases)
        }
        return try records.map { text in
            var v = try JSONCoding.decode(ModelVersion.self, text)
            v.aliases = aliasRows.filter { $0.name == v.name && $0.version == v.version }.map(\.alias).sorted()
            return v
        }
    }

    public func insertSweep(_ sweep: Sweep, secrets: [String: JSONValue]) async throws {
        let time = now(), feed = self.feed
        let record = try JSONCoding.string(sweep)
        let secretText = try sealed(secrets)
        try await db.write { db in
            if let existing = try String.fetchOne(db, sql: "SELECT id FROM sweep WHERE id = ? COLLATE NOCASE", arguments: [sweep.id]) {
                throw YardError(.conflict, field: "id", "a sweep \(existing) exists already; pick another study_name or id")
            }
            try db.execute(sql: "INSERT INTO sweep (id, state, created_at, record, secrets) VALUES (?, ?, ?, ?, ?)",
                           arguments: [sweep.id, sweep.state.rawValue, sweep.createdAt.timeIntervalSince1970, record, secretText])
            _ = try Self.insertEvent(db, jobID: sweep.id, type: "state", payload: StoreEvents.sweepState(sweep, previous: nil),
                                     time: time, feed: feed, entity: .sweep)
        }
    }

    public func sweep(_ id: String) async throws -> Sweep? {
        let text = try await db.read { db in try String.fetchOne(db, sql: "SELECT record FROM sweep WHERE id = ?", arguments: [id]) }
        return try text.map { try JSONCoding.decode(Sweep.self, $0) }
    }

    public func sweeps(limit: Int, active: Bool) async throws -> [Sweep] {
        let ended = Sweep.State.allCases.filter(\.isTerminal).map(\.rawValue)
        let texts = try await db.read { db in
            try String.fetchAll(db, sql: """
                SELECT record FROM sweep WHERE (?1 = 0 OR state NOT IN (?2, ?3, ?4)) ORDER BY created_at DESC, id DESC LIMIT ?5
                """, arguments: [active, ended[0], ended[1], ended[2], limit])
        }
        return try texts.map { try JSONCoding.decode(Sweep.self, $0) }
    }

    @discardableResult
    public func updateSweep(_ id: String, _ change: @escaping @Sendable (inout Sweep) throws -> Void) async throws -> Sweep {
        let time = now(), feed = self.feed
        return try await db.write { db in
            guard let text = try String.fetchOne(db, sql: "SELECT record FROM sweep WHERE id = ?", arguments: [id]) else {
                throw YardError(.notFound, field: "id", "no sweep \(id); `yard sweeps` lists them")
            }
            var sweep = try JSONCoding.decode(Sweep.self, text)
            let before = sweep, previous = sweep.state
            try change(&sweep)
            try db.execute(sql: "UPDATE sweep SET state = ?, record = ? WHERE id = ?", arguments: [sweep.state.rawValue, try JSONCoding.string(sweep), id])
            for body in StoreEvents.trialChanges(from: before, to: sweep) {
                _ = try Self.insertEvent(db, jobID: id, type: "trial", payload: body, time: time, feed: feed, entity: .sweep)
            }
            if sweep.state != previous {
                _ = try Self.insertEvent(db, jobID: id, type: "state", payload: StoreEvents.sweepState(sweep, previous: previous),
                                         time: time, feed: feed, entity: .sweep)
            }
            return sweep
        }
    }

    public func sweepSecrets(of id: String) async throws -> [String: JSONValue] {
        let text = try await db.read { db in try String.fetchOne(db, sql: "SELECT secrets FROM sweep WHERE id = ?", arguments: [id]) }
        return try text.map(opened) ?? [:]
    }

    public func recordDatasetVersion(_ version: DatasetVersion) async throws -> (DatasetVersion, created: Bool) {
        let time = now(), feed = self.feed
        return try await db.write { db in
            if let text = try String.fetchOne(db, sql: "SELECT record FROM dataset_version WHERE name = ? AND id = ?", arguments: [version.name, version.id]) {
                return (try JSONCoding.decode(DatasetVersion.self, text), false)
            }
            var numbered = version
            numbered.number = (try Int.fetchOne(db, sql: "SELECT MAX(number) FROM dataset_version WHERE name = ?", arguments: [version.name]) ?? 0) + 1
            try db.execute(sql: "INSERT INTO dataset_version (name, number, id, created_at, record) VALUES (?, ?, ?, ?, ?)",
                           arguments: [numbered.name, numbered.number, numbered.id, numbered.createdAt.timeIntervalSince1970, try JSONCoding.string(numbered)])
            _ = try Self.insertEvent(db, jobID: numbered.name, type: "version", payload: StoreEvents.datasetVersion(numbered),
                                     time: time, feed: feed, entity: .dataset)
            return (numbered, true)
        }
    }

    public func datasetVersions(name: String?) async throws -> [DatasetVersion] {
        let texts = try await db.read { db in
            try String.fetchAll(db, sql: "SELECT record FROM dataset_version WHERE (?1 IS NULL OR name = ?1) ORDER BY created_at DESC, name, number DESC", arguments: [name])
        }
        return try texts.map { try JSONCoding.decode(DatasetVersion.self, $0) }
    }

    public func jobs(usingDataset reference: String, limit: Int) async throws -> [Job] {
        let texts = try await db.read { db in
            try String.fetchAll(db, sql: "SELECT record FROM job WHERE json_extract(record, '$.dataset') = ? ORDER BY created_at DESC LIMIT ?", arguments: [reference, limit])
        }
        return try texts.map { try JSONCoding.decode(Job.self, $0) }
    }
}
