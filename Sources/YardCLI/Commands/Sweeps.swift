import ArgumentParser
import Foundation
import Yams
import YardDomain

/// `yard sweep config.yaml [--wait]`, `yard sweep show ID`, `yard sweep stop ID`.
struct SweepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a hyperparameter sweep (Optuna): its trials are ordinary jobs.",
        subcommands: [Start.self, ShowSweep.self, StopSweep.self], defaultSubcommand: Start.self)

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "start", abstract: "Validate a config with a sweeper: block and start the sweep.")
        @Argument(help: "The config (YAML or JSON) with sweeper.search_space (or sweeper.tune: true).") var config: String
        @Flag(help: "Follow the sweep until it ends: trials done/running/pruned, best so far.") var wait = false
        @Flag(help: "Print the sweep as JSON.") var json = false
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                let document = try Submit.load(config)
                guard document.sweep?.isSweep == true else {
                    throw YardError.invalid("sweeper", "\(config) is not a sweep; give sweeper.search_space (or sweeper.tune: true), or use `yard submit`")
                }
                let body = try JSONEncoder().encode(JSONValue.object(document.document))
                let data = try await server.client.send(.POST, "/api/sweeps", body: body)
                let sweep = try JSONDecoder().decode(JSONValue.self, from: data)
                let id = sweep["id"]?.stringValue ?? "?"
                if json { Output.line(String(decoding: data, as: UTF8.self)) } else { Output.line("sweep \(id) started (study \(sweep["study"]?.stringValue ?? id))") }
                if wait { try await Self.follow(id, client: server.client) }
            }
        }

        /// Prints progress whenever it changes; exits 0 when the sweep finished, 3 when stopped, 1 otherwise.
        static func follow(_ id: String, client: APIClient) async throws {
            var last = ""
            while true {
                let sweep = try await client.get("/api/sweeps/\(id)", as: JSONValue.self)
                let line = ShowSweep.progress(sweep)
                if line != last { Output.line(line) }
                last = line
                switch sweep["state"]?.stringValue {
                case "finished": return
                case "stopped": throw ExitCode(3)
                case "failed": throw ExitCode(1)
                default: try await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    struct ShowSweep: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "A sweep: its trials, their states and values, the best.")
        @Argument(help: "The sweep id.") var id: String
        @Flag(help: "Print JSON.") var json = false
        @Flag(name: .customLong("best-config"), help: "Print the best trial's config as YAML, ready for `yard submit` (secrets masked).")
        var bestConfig = false
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                let data = try await server.client.send(.GET, "/api/sweeps/\(id)")
                if json { return Output.line(String(decoding: data, as: UTF8.self)) }
                let sweep = try JSONDecoder().decode(JSONValue.self, from: data)
                if bestConfig {
                    guard let best = sweep["best_config"] else { throw YardError(.notFound, field: "id", "sweep \(id) has no finished trial yet") }
                    return Output.raw(try Yams.dump(object: Self.plain(best), sortKeys: true))
                }
                Output.line(Self.progress(sweep))
                if let message = sweep["message"]?.stringValue { Output.line(message) }
                if let run = sweep["mlflow_run_id"]?.stringValue { Output.line("MLflow run: \(run) (trials are its child runs)") }
                let rows = (sweep["trial_list"]?.arrayValue ?? []).map { trial -> [String] in
                    let params = (trial["params"]?.objectValue ?? [:]).sorted { $0.key < $1.key }
                        .map { "\($0.key.replacingOccurrences(of: "train.", with: ""))=\(Self.short($0.value))" }.joined(separator: " ")
                    return [trial["number"]?.intValue.map(String.init) ?? "?", trial["job_id"]?.stringValue ?? "-", trial["state"]?.stringValue ?? "-",
                            trial["epoch"]?.intValue.map(String.init) ?? "-", trial["value"]?.doubleValue.map(Output.number) ?? "-", params]
                }
                Table.print(header: ["TRIAL", "JOB", "STATE", "EPOCH", "VALUE", "PARAMS"], rows: rows)
            }
        }

        /// `sweep-… running: 3/6 trials (1 succeeded, 1 pruned, 1 running); best 0.52 (trial 1)`.
        static func progress(_ sweep: JSONValue) -> String {
            let counts = (sweep["counts"]?.objectValue ?? [:]).sorted { $0.key < $1.key }.map { "\($0.value.intValue ?? 0) \($0.key)" }.joined(separator: ", ")
            var line = "\(sweep["id"]?.stringValue ?? "?") \(sweep["state"]?.stringValue ?? "?"): \(sweep["trials"]?.intValue ?? 0)/\(sweep["n_trials"]?.intValue ?? 0) trials"
            if !counts.isEmpty { line += " (\(counts))" }
            if let best = sweep["best"], let value = best["value"]?.doubleValue {
                line += "; best \(sweep["fitness"]?.stringValue ?? "fitness") \(Output.number(value)) (trial \(best["number"]?.intValue ?? 0))"
            }
            return line
        }

        static func short(_ value: JSONValue) -> String {
            switch value {
            case .double(let d): Output.number(d)
            case .int(let i): String(i)
            case .string(let s): s
            case .bool(let b): String(b)
            default: "\(value)"
            }
        }

        /// A JSON value as plain Swift values for Yams.
        static func plain(_ value: JSONValue) -> Any {
            switch value {
            case .null: return NSNull()
            case .bool(let b): return b
            case .int(let i): return i
            case .double(let d): return d
            case .string(let s): return s
            case .array(let a): return a.map(plain)
            case .object(let o): return o.mapValues(plain)
            }
        }
    }

    struct StopSweep: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a sweep: no new trials; running ones stop.")
        @Argument(help: "The sweep id.") var id: String
        @OptionGroup var server: ServerOptions

        func run() async throws {
            try await reporting {
                let data = try await server.client.send(.POST, "/api/sweeps/\(id)/stop")
                Output.line(ShowSweep.progress(try JSONDecoder().decode(JSONValue.self, from: data)))
            }
        }
    }
}

struct Sweeps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List sweeps: state, trials done, best value.")
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await reporting {
            let data = try await server.client.send(.GET, "/api/sweeps")
            if json { return Output.line(String(decoding: data, as: UTF8.self)) }
            let sweeps = try JSONDecoder().decode(JSONValue.self, from: data)["sweeps"]?.arrayValue ?? []
            if sweeps.isEmpty { return Output.line("no sweeps; start one with `yard sweep config.yaml`") }
            Table.print(header: ["ID", "STUDY", "STATE", "TRIALS", "BEST"], rows: sweeps.map { sweep in
                [sweep["id"]?.stringValue ?? "?", sweep["study"]?.stringValue ?? "-", sweep["state"]?.stringValue ?? "-",
                 "\(sweep["trials"]?.intValue ?? 0)/\(sweep["n_trials"]?.intValue ?? 0)", sweep["best"]?["value"]?.doubleValue.map(Output.number) ?? "-"]
            })
        }
    }
}
