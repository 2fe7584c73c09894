import Foundation
import Testing
import YardDomain
import YardEngine
import YardTestSupport

/// Files a job reads and writes stay where they belong: datasets may not
/// reach outside their folder through symlinks, and nothing the engine
/// reports outside the run folder is recorded or kept.
@Suite("Confinement")
struct ConfinementTests {
    func plantSymlink(_ t: TestYard) throws -> String {
        let images = t.dir.file("demo/images")
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        let link = images + "/leak.jpg"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc/hostname")
        return link
    }

    @Test func aSymlinkOutOfTheDatasetFailsTheJobNamingTheFile() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let link = try plantSymlink(t)
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: sym")))
        let runner = ScriptedEngineRunner.training(epochs: 1)
        try await t.worker(runner).drain()
        let job = try await t.yard.store.require("sym")
        #expect(job.state == .failed)
        #expect(job.message?.contains(link) == true)
        #expect(job.message?.contains("--allow-dataset-symlinks") == true)
        #expect(runner.requests.all.isEmpty, "the engine never started")
    }

    @Test func symlinksInsideTheDatasetOrAllowedOnesTrain() async throws {
        let t = try TestYard(allowDatasetSymlinks: true)
        defer { t.dir.remove() }
        _ = try plantSymlink(t)
        try FileManager.default.createSymbolicLink(atPath: t.dir.file("demo/images/inside.yaml"), withDestinationPath: t.data)
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: ok")))
        try await t.worker(.training(epochs: 1)).drain()
        #expect(try await t.yard.store.require("ok").state == .succeeded)
    }

    @Test func weightsReportedOutsideTheRunFolderFailTheJob() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: out")))
        let runner = ScriptedEngineRunner { _ in [
            .event(EngineEvent(kind: .artifact, payload: ["path": "/etc/hostname", "kind": "other"])),
            .event(EngineEvent(kind: .finished, payload: ["best": "/tmp/elsewhere/best.pt", "metrics": [:]])),
        ] }
        try await t.worker(runner).drain()
        let job = try await t.yard.store.require("out")
        #expect(job.state == .failed)
        #expect(job.bestWeights == nil)
        #expect(job.message?.contains("outside the run folder") == true)
        #expect(try await t.yard.store.artifacts(of: "out").allSatisfy { $0.key != "out/hostname" })
        #expect(!FileManager.default.fileExists(atPath: t.dir.file("artifacts/out/hostname")))
    }
}
