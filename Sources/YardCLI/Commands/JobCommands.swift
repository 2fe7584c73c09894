import ArgumentParser
import Foundation
import YardDomain

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")

    @Option(help: "Only jobs in this state.") var state: String?
    @Option(help: "How many to list.") var limit = 50
    @Flag(help: "Only the jobs I submitted (the user of YARD_TOKEN).") var mine = false
    @Option(help: "Only the jobs this user submitted.") var owner: String?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var server: ServerOptions

    struct List: Codable { var jobs: [Job] }

    func run() async throws {
        try await reporting {
            var query = "?limit=\(limit)"
            if let state { query += "&state=\(state.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }
            if mine { query += "&mine=true" }
            if let owner {
                try User.validateName(owner, field: "--owner")
                query += "&owner=\(owner)"
            }
            let list = try await server.client.get("/api/jobs\(query)", as: List.self)
            if json { return try Output.json(list) }
            if list.jobs.isEmpty { return Output.line("no jobs; submit one with `yard submit config.yaml`") }
            let rows = list.jobs.map { job -> [String] in
                let progress = "\(job.epoch ?? 0)/\(job.epochs ?? 0)"
                let fitness = job.fitness.map(Output.number) ?? "-"
                return [job.id, job.state.rawValue, String(job.priority ?? JobPriority.default), progress, fitness, job.model, job.experiment]
            }
            Table.print(header: ["ID", "STATE", "PRI", "EPOCH", "FITNESS", "MODEL", "EXPERIMENT"], rows: rows)
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one job: state, metrics per epoch, artifacts.")

    @Argument(help: "Job id.") var id: String
    @Flag(help: "Print JSON (config redacted).") var json = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await reporting {
            let detail = try await server.client.get("/api/jobs/\(id)", as: JobDetail.self)
            if json { return try Output.json(detail) }
            Summary.print(detail)
            if !detail.epochs.isEmpty {
                let keys = Array(Set(detail.epochs.flatMap { $0.metrics.keys }).filter { $0.hasPrefix("metrics/") || $0.hasPrefix("train/") }.sorted().prefix(6))
                let rows = detail.epochs.map { e in ["\(e.epoch)", Output.duration(e.seconds)] + keys.map { e.metrics[$0].map(Output.number) ?? "-" } }
                Table.print(header: ["EPOCH", "TIME"] + keys.map { $0.replacingOccurrences(of: "metrics/", with: "") }, rows: rows)
            }
            if !detail.artifacts.isEmpty {
                Output.line("artifacts: \(detail.artifacts.count) (\(detail.artifacts.filter { $0.kind == "weights" }.map(\.key).joined(separator: ", ")))")
            }
        }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a job's training log.")

    @Argument(help: "Job id.") var id: String
    @Flag(name: .shortAndLong, help: "Keep printing new lines until the job ends.") var follow = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await reporting {
            let client = server.client
            let response = try await client.execute(client.request(.GET, "/api/jobs/\(id)/logs?follow=\(follow)"), timeout: .hours(24 * 30))
            if response.status.code >= 400 {
                try APIClient.check(response.status, Data(buffer: try await response.body.collect(upTo: 1 << 20)))
            }
            for try await chunk in response.body {
                Output.raw(Data(buffer: chunk))
            }
        }
    }
}

struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a job gracefully: it saves a resumable checkpoint and ends `stopped`.")

    @Argument(help: "Job id.") var id: String
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await reporting {
            let job = try APIClient.decoder.decode(Job.self, from: try await server.client.send(.POST, "/api/jobs/\(id)/stop"))
            Output.line("\(job.id): \(job.state.rawValue)")
        }
    }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a stopped or failed job from its last checkpoint.")

    @Argument(help: "Job id.") var id: String
    @Flag(help: "Follow the job until it ends.") var wait = false
    @OptionGroup var server: ServerOptions

    func run() async throws {
        try await reporting {
            let job = try APIClient.decoder.decode(Job.self, from: try await server.client.send(.POST, "/api/jobs/\(id)/resume"))
            Output.line("\(job.id): \(job.state.rawValue)")
            if wait { try await WaitForJob(client: server.client, jobID: id).run() }
        }
    }
}

enum Table {
    static func print(header: [String], rows: [[String]]) {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0.indices.contains(i) ? $0[i].count : 0 }.max() ?? 0 }
        for row in all {
            Output.line(row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  "))
        }
    }
}
