import Foundation
import GRDB
import YardDomain

/// The embedded database: one SQLite file in WAL mode holding the store's
/// tables and the embedded queue, so queued jobs survive a restart.
///
/// All access goes through `read`/`write` below, which always suspend.
/// GRDB has a blocking twin of each; a closure whose result is not Sendable
/// (`[Row]`) silently resolves to it, and then every waiting request blocks
/// a cooperative thread on the reader pool: with two cores, two SSE clients
/// were enough to stop the whole server (issue 7).
public struct YardDatabase: Sendable {
    let writer: any DatabaseWriter

    /// When a commit is on the disk (SQLite's `synchronous` on the writer).
    public enum Sync: String, Sendable, CaseIterable {
        /// The default: a commit is in the WAL (the OS's page cache) when
        /// the call returns, so a killed server keeps it; the WAL is fsynced
        /// at checkpoints, so a power cut or kernel crash can lose the last
        /// commits (never corrupt the file).
        case normal
        /// Every commit (one group commit of the event log) is fsynced
        /// before the call returns: it survives a power cut too, at the
        /// disk's fsync latency per commit (bench/events.sh measures both).
        case full
    }

    /// Opens (creating if needed) the database file and migrates it. The
    /// file and its WAL are private to the user (0600), and deleted content is
    /// overwritten (`secure_delete`), so a replaced secret leaves no copy.
    /// - Parameter readers: concurrent read connections; a request waiting
    ///   for one suspends, it holds no thread.
    /// - Parameter sync: when a commit is on the disk (`--sync`).
    public init(path: String, readers: Int = 8, sync: Sync = .normal) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.maximumReaderCount = readers
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA secure_delete = ON") }
        do {
            let pool = try DatabasePool(path: path, configuration: config)
            try Self.migrator.migrate(pool)
            // Per connection, and GRDB sets NORMAL when it opens the writer in WAL mode: set on the writer after that.
            if sync == .full { try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") } }
            for suffix in ["", "-wal", "-shm"] { _ = chmod(path + suffix, 0o600) }
            writer = pool
        } catch {
            throw YardError(.unavailable, field: "data-dir", "cannot open the database at \(path): \(error.localizedDescription)")
        }
    }

    /// An in-memory database (tests).
    public init() throws {
        let queue = try DatabaseQueue()
        try Self.migrator.migrate(queue)
        writer = queue
    }

    /// The writer's `synchronous` setting as SQLite reports it (1 NORMAL, 2 FULL).
    package func writerSynchronous() async throws -> Int {
        try await writer.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
    }

    package func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do { return try await writer.read(body) } catch { throw Self.machine(error) }
    }

    package func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do { return try await writer.write(body) } catch { throw Self.machine(error) }
    }

    /// Queues `body` on the writer without waiting for it (the event log's
    /// group commit runs its transactions there).
    package func asyncWriteWithoutTransaction(_ body: @escaping @Sendable (Database) -> Void) {
        writer.asyncWriteWithoutTransaction(body)
    }

    package func writeWithoutTransaction<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do { return try await writer.writeWithoutTransaction(body) } catch { throw Self.machine(error) }
    }

    /// A failure of the machine under the store (a full disk, an I/O error,
    /// a file gone read-only or damaged, a lock held past the busy timeout)
    /// as one line that says what to do (an API answers it with 503); any
    /// other error (a bug, a constraint) unchanged.
    static func machine(_ error: any Error) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        let what: String
        switch error.resultCode {
        case .SQLITE_FULL: what = "the disk holding the data dir is full: free space there and try again"
        case .SQLITE_IOERR: what = "the disk holding the data dir failed a read or write (I/O error): check the device"
        case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM:
            what = "the database file cannot be written (read-only, gone or not permitted): check the data dir's mount and permissions"
        case .SQLITE_BUSY, .SQLITE_LOCKED: what = "the database stayed locked past the 10 s busy timeout: try again"
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: what = "the database file is damaged: restore the data dir from a backup (yard restore)"
        default: return error
        }
        return YardError(.unavailable, field: "store", "the store is unavailable: \(what)")
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE job (
                  id TEXT PRIMARY KEY NOT NULL,
                  state TEXT NOT NULL,
                  created_at DOUBLE NOT NULL,
                  record TEXT NOT NULL
                );
                CREATE INDEX job_by_created ON job(created_at);
                CREATE INDEX job_by_state ON job(state);
                CREATE TABLE job_secret (
                  job_id TEXT PRIMARY KEY NOT NULL REFERENCES job(id) ON DELETE CASCADE,
                  secrets TEXT NOT NULL
                );
                CREATE TABLE epoch (
                  job_id TEXT NOT NULL REFERENCES job(id) ON DELETE CASCADE,
                  epoch INTEGER NOT NULL,
                  metrics TEXT NOT NULL,
                  seconds DOUBLE NOT NULL,
                  PRIMARY KEY (job_id, epoch)
                );
                CREATE TABLE artifact (
                  job_id TEXT NOT NULL REFERENCES job(id) ON DELETE CASCADE,
                  key TEXT NOT NULL,
                  kind TEXT NOT NULL,
                  size INTEGER NOT NULL,
                  PRIMARY KEY (job_id, key)
                );
                CREATE TABLE event (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  job_id TEXT NOT NULL,
                  type TEXT NOT NULL,
                  payload TEXT NOT NULL,
                  time DOUBLE NOT NULL
                );
                CREATE INDEX event_by_job ON event(job_id, id);
                CREATE TABLE log (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  job_id TEXT NOT NULL,
                  line TEXT NOT NULL
                );
                CREATE INDEX log_by_job ON log(job_id, id);
                CREATE TABLE queue (
                  job_id TEXT PRIMARY KEY NOT NULL,
                  seq INTEGER NOT NULL,
                  claimed_by TEXT,
                  claimed_at DOUBLE
                );
                CREATE INDEX queue_by_seq ON queue(seq);
                """)
        }
        migrator.registerMigration("v2-registry") { db in
            try db.execute(sql: """
                CREATE TABLE model_version (
                  name TEXT NOT NULL,
                  version TEXT NOT NULL,
                  record TEXT NOT NULL,
                  created_at DOUBLE NOT NULL,
                  PRIMARY KEY (name, version)
                );
                CREATE TABLE model_alias (
                  name TEXT NOT NULL,
                  alias TEXT NOT NULL,
                  version TEXT NOT NULL,
                  PRIMARY KEY (name, alias)
                );
                """)
        }
        migrator.registerMigration("v3-queue-attempts") { db in
            // Claims of one job are numbered, so a worker that lost its claim is fenced.
            try db.execute(sql: "ALTER TABLE queue ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v4-sweeps") { db in
            try db.execute(sql: """
                CREATE TABLE sweep (
                  id TEXT PRIMARY KEY NOT NULL,
                  state TEXT NOT NULL,
                  created_at DOUBLE NOT NULL,
                  record TEXT NOT NULL,
                  secrets TEXT NOT NULL
                );
                CREATE INDEX sweep_by_created ON sweep(created_at);
                """)
        }
        migrator.registerMigration("v5-datasets") { db in
            try db.execute(sql: """
                CREATE TABLE dataset_version (
                  name TEXT NOT NULL,
                  number INTEGER NOT NULL,
                  id TEXT NOT NULL,
                  created_at DOUBLE NOT NULL,
                  record TEXT NOT NULL,
                  PRIMARY KEY (name, number),
                  UNIQUE (name, id)
                );
                """)
        }
        migrator.registerMigration("v6-registry-of-record") { db in
            // The store numbers versions itself now; every alias move is kept.
            try db.execute(sql: """
                ALTER TABLE model_version ADD COLUMN job_id TEXT;
                CREATE INDEX model_version_by_job ON model_version(name, job_id);
                CREATE TABLE model_alias_history (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  name TEXT NOT NULL,
                  alias TEXT NOT NULL,
                  version TEXT,
                  previous TEXT,
                  time DOUBLE NOT NULL,
                  reason TEXT NOT NULL
                );
                CREATE INDEX model_alias_history_by_name ON model_alias_history(name, alias, id);
                """)
        }
        migrator.registerMigration("v7-model-settings") { db in
            // Per-model serving settings (preprocessing such as face blurring).
            try db.execute(sql: "CREATE TABLE model_settings (name TEXT PRIMARY KEY NOT NULL, record TEXT NOT NULL)")
        }
        migrator.registerMigration("v8-event-log") { db in
            // One log for the whole system: what an event is about, and the
            // highest sequence number retention has removed.
            try db.execute(sql: """
                ALTER TABLE event ADD COLUMN entity TEXT NOT NULL DEFAULT 'job';
                DROP INDEX event_by_job;
                CREATE INDEX event_by_entity ON event(entity, job_id, id);
                CREATE INDEX event_by_time ON event(time);
                CREATE TABLE event_floor (only INTEGER PRIMARY KEY CHECK (only = 1), seq INTEGER NOT NULL);
                """)
        }
        migrator.registerMigration("v9-event-experiment") { db in
            // A job's or sweep's events carry its experiment, written with
            // the event, so `?experiment=` is an indexed look-up that holds
            // after the job is pruned; older events take theirs from the record.
            try db.execute(sql: """
                ALTER TABLE event ADD COLUMN experiment TEXT;
                UPDATE event SET experiment = (SELECT json_extract(job.record, '$.experiment') FROM job WHERE job.id = event.job_id)
                  WHERE entity = 'job';
                UPDATE event SET experiment = (SELECT json_extract(sweep.record, '$.experiment') FROM sweep WHERE sweep.id = event.job_id)
                  WHERE entity = 'sweep';
                CREATE INDEX event_by_experiment ON event(experiment, id) WHERE experiment IS NOT NULL;
                """)
        }
        migrator.registerMigration("v10-job-experiment") { db in
            // `/metrics` counts jobs by state and experiment at every scrape:
            // an index over the experiment read from the record (a virtual
            // column, so no write path changes) answers it without parsing
            // each job's JSON (283 ms at 100,000 jobs before, per scrape).
            try db.execute(sql: """
                ALTER TABLE job ADD COLUMN experiment TEXT GENERATED ALWAYS AS (json_extract(record, '$.experiment')) VIRTUAL;
                CREATE INDEX job_by_state_experiment ON job(state, experiment);
                """)
        }
        migrator.registerMigration("v11-users") { db in
            // Users and their API tokens (a token's record holds its salted
            // hash, never the token); who owns a job (an indexed virtual
            // column, for `?owner=` / `yard jobs --mine`) and who moved an alias.
            try db.execute(sql: """
                CREATE TABLE user (name TEXT PRIMARY KEY NOT NULL, record TEXT NOT NULL);
                CREATE TABLE api_token (
                  id TEXT PRIMARY KEY NOT NULL,
                  user TEXT NOT NULL,
                  created_at DOUBLE NOT NULL,
                  revoked INTEGER NOT NULL,
                  record TEXT NOT NULL
                );
                CREATE INDEX api_token_by_user ON api_token(user, created_at);
                ALTER TABLE job ADD COLUMN owner TEXT GENERATED ALWAYS AS (json_extract(record, '$.owner')) VIRTUAL;
                CREATE INDEX job_by_owner ON job(owner, created_at);
                ALTER TABLE model_alias_history ADD COLUMN moved_by TEXT;
                """)
        }
        migrator.registerMigration("v12-scheduling") { db in
            // What orders the embedded queue (issue 32): each waiting job's
            // priority, owner, experiment and when it was queued (aging), and
            // each claim's span of GPU time, for fair share over the last 24 h.
            // Jobs queued before this wait from now on.
            try db.execute(sql: """
                ALTER TABLE queue ADD COLUMN priority INTEGER NOT NULL DEFAULT 5;
                ALTER TABLE queue ADD COLUMN owner TEXT;
                ALTER TABLE queue ADD COLUMN experiment TEXT NOT NULL DEFAULT 'default';
                ALTER TABLE queue ADD COLUMN enqueued_at DOUBLE NOT NULL DEFAULT 0;
                UPDATE queue SET enqueued_at = CAST(strftime('%s', 'now') AS DOUBLE);
                CREATE TABLE queue_usage (
                  job_id TEXT NOT NULL,
                  owner TEXT,
                  experiment TEXT NOT NULL,
                  started_at DOUBLE NOT NULL,
                  ended_at DOUBLE
                );
                CREATE INDEX queue_usage_by_job ON queue_usage(job_id);
                CREATE INDEX queue_usage_by_end ON queue_usage(ended_at);
                """)
        }
        migrator.registerMigration("v13-routing") { db in
            // What a waiting job needs of the worker that claims it (`resources:`):
            // its tags (sorted, comma-joined; '' for none) and free GPU memory in GB.
            try db.execute(sql: """
                ALTER TABLE queue ADD COLUMN tags TEXT NOT NULL DEFAULT '';
                ALTER TABLE queue ADD COLUMN gpu_memory_gb DOUBLE;
                """)
        }
        migrator.registerMigration("v14-sessions") { db in
            // The dashboard's signed-in browsers, so a restart signs no one
            // out: under the SHA-256 of the cookie, never the cookie itself.
            try db.execute(sql: """
                CREATE TABLE browser_session (key TEXT PRIMARY KEY NOT NULL, expires_at DOUBLE NOT NULL, record TEXT NOT NULL);
                CREATE INDEX browser_session_by_expiry ON browser_session(expires_at);
                """)
        }
        return migrator
    }
}

/// How records are written as JSON everywhere they are kept or sent (the
/// store, Redis): dates as epoch seconds, keys sorted.
public enum JSONCoding {
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .secondsSince1970
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }()

    public static func string<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try decoder.decode(type, from: Data(text.utf8))
    }
}
