import Foundation
import Testing
import YardDomain
import YardEngine
import YardTestSupport

/// The warm engine with a stand-in interpreter (a shell script that says
/// which engine it is and which job it got): started ahead of need, handed
/// the job on stdin, replaced after each job, and not used when it died, is
/// too old, or was made from an interpreter or engine files changed since.
@Suite("Warm engine")
struct WarmEngineTests {
    struct Rig {
        let dir: TemporaryDirectory
        let python: String
        let environment: EngineEnvironment

        init() throws {
            dir = try TemporaryDirectory("warm")
            _ = try dir.write("engine/trainyard_engine/__main__.py", "# the engine's sources, as far as the fingerprint is concerned\n")
            _ = try dir.write("engine/requirements.txt", "ultralytics\n")
            python = dir.file("bin/python")
            environment = EngineEnvironment(python: python, engineDirectory: dir.file("engine"), ultralyticsDirectory: dir.file("ultralytics"))
            try interpreter("v1")
        }

        /// (Re)writes the stand-in interpreter: `-m trainyard_engine train --warm`
        /// waits for one line on stdin; `train --spec PATH` runs at once.
        func interpreter(_ version: String, warmExits: Bool = false) throws {
            let path = try dir.write("bin/python.new", """
                #!/bin/sh
                echo "engine \(version) pid $$"
                if [ "$4" = "--warm" ]; then
                  \(warmExits ? "exit 3" : "")
                  IFS= read -r line || { echo "no job"; exit 0; }
                  echo "job warm $line"
                else
                  echo "job cold $5"
                fi

                """)
            chmod(path, 0o755)
            rename(path, python)
            // A process another test forks meanwhile may hold the script's
            // write descriptor until it execs (ETXTBSY): they exec within milliseconds.
            usleep(100_000)
        }

        func runner(maxAge: Duration = .seconds(1800)) -> PythonEngineRunner {
            PythonEngineRunner(environment: environment, warm: WarmEngine(environment: environment, maxAge: maxAge))
        }

        func request(_ id: String) -> EngineRequest {
            EngineRequest(jobID: id, spec: ["job_id": .string(id)], workDirectory: dir.file("jobs/\(id)"))
        }
    }

    static func lines(_ process: any EngineProcess) async -> [String] {
        var lines: [String] = []
        for await output in process.output { if case .log(let line) = output { lines.append(line) } }
        _ = await process.waitForExit()
        return lines
    }

    static func waiting(_ runner: PythonEngineRunner) async throws -> Int32 {
        let warm = try #require(runner.warm)
        var pid: Int32?
        try await eventually("a warm engine waiting") {
            pid = await warm.waitingPID
            return pid != nil
        }
        return pid!
    }

    @Test func theWarmEngineStartedAheadTakesTheJobAndTheNextOneStarts() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let runner = rig.runner()
        await runner.prepare()
        let first = try await Self.waiting(runner)
        let lines = await Self.lines(try await runner.start(rig.request("a")))
        #expect(lines.first == "engine v1 pid \(first)", "the engine started before the job took it: \(lines)")
        let handed = try #require(lines.last)
        #expect(handed.hasPrefix("job warm "), "\(lines)")
        let job = try JSONDecoder().decode([String: String].self, from: Data(handed.dropFirst("job warm ".count).utf8))
        #expect(job == ["spec": rig.dir.file("jobs/a/spec.json"), "cwd": rig.dir.file("jobs/a")])
        #expect(FileManager.default.fileExists(atPath: rig.dir.file("jobs/a/spec.json")))
        let next = try await Self.waiting(runner)
        #expect(next != first, "the next job's engine started as this one was taken")
        #expect(await runner.warm?.taken == 1)
        // A waiting engine runs in the worker's private folder, not a shared one like /tmp
        // (`python -m` imports from its working folder first).
        let cwd = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(next)/cwd")
        #expect(cwd == rig.dir.file("ultralytics"))
        let mode = try FileManager.default.attributesOfItem(atPath: cwd)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        await runner.close()
        #expect(await runner.warm?.waitingPID == nil)
    }

    @Test func aWarmEngineWhosePythonChangedIsNotUsed() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let runner = rig.runner()
        await runner.prepare()
        let stale = try await Self.waiting(runner)
        try rig.interpreter("v2")
        let lines = await Self.lines(try await runner.start(rig.request("b")))
        #expect(lines.first?.hasPrefix("engine v2") == true && lines.last == "job cold \(rig.dir.file("jobs/b/spec.json"))", "\(lines)")
        try await eventually("the stale engine to be gone") { kill(stale, 0) != 0 }
        #expect(await runner.warm?.cold == 1)
        await runner.close()
    }

    @Test func aWarmEngineMadeFromOtherEngineFilesIsNotUsed() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let runner = rig.runner()
        await runner.prepare()
        _ = try await Self.waiting(runner)
        _ = try rig.dir.write("engine/trainyard_engine/train.py", "# a new file of the engine\n")
        let lines = await Self.lines(try await runner.start(rig.request("c")))
        #expect(lines.last?.hasPrefix("job cold") == true, "\(lines)")
        await runner.close()
    }

    @Test func aDeadOrTooOldWarmEngineIsReplacedByAColdStart() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        try rig.interpreter("v1", warmExits: true)
        let runner = rig.runner()
        await runner.prepare()
        try await Task.sleep(for: .milliseconds(300))  // it exits at once
        #expect(await Self.lines(try await runner.start(rig.request("d"))).last?.hasPrefix("job cold") == true)
        await runner.close()

        try rig.interpreter("v1")
        let old = rig.runner(maxAge: .milliseconds(100))
        await old.prepare()
        _ = try await Self.waiting(old)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await Self.lines(try await old.start(rig.request("e"))).last?.hasPrefix("job cold") == true)
        await old.close()
    }

    @Test func withoutAJobAWarmEngineEndsAtEndOfFile() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let runner = rig.runner()
        await runner.prepare()
        let pid = try await Self.waiting(runner)
        await runner.close()
        try await eventually("the waiting engine to end") { kill(pid, 0) != 0 }
    }
}
