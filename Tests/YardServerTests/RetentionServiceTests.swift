import Foundation
import Logging
import Testing
import YardBackup
import YardDomain
@testable import YardServer
import YardStore

/// `--gc-at HH:MM` (issue 30): the server runs `yard gc` once a day.
@Suite("Nightly gc in the server")
struct RetentionServiceTests {
    @Test func aTimeOfDayIsHHMMAndAnythingElseIsOneLineNamingTheFlag() throws {
        for good in ["03:00", "3:30", "00:00", "23:59"] { _ = try RetentionSchedule.parse(good) }
        for bad in ["3", "24:00", "03:60", "3:0", "ab:cd", "03:00:00", "-1:00", " 03:00", ""] {
            do {
                _ = try RetentionSchedule.parse(bad)
                Issue.record("\(bad) was accepted")
            } catch {
                #expect(error.message.hasPrefix("--gc-at must be") && !error.message.contains("\n"), "\(error.message)")
            }
        }
    }

    @Test func theNextRunIsTodaysTimeIfStillAheadElseTomorrows() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let schedule = try RetentionSchedule.parse("03:00")
        let day = calendar.date(from: DateComponents(year: 2026, month: 12, day: 7, hour: 0))!
        let at = { (hours: Double) in day.addingTimeInterval(hours * 3600) }
        #expect(schedule.next(after: at(2), calendar: calendar) == at(3))
        #expect(schedule.next(after: at(3), calendar: calendar) == at(27), "exactly at the time: the next day's")
        #expect(schedule.next(after: at(4), calendar: calendar) == at(27))
        // The last day of the year rolls over.
        let eve = calendar.date(from: DateComponents(year: 2026, month: 12, day: 31, hour: 23))!
        #expect(schedule.next(after: eve, calendar: calendar) == calendar.date(from: DateComponents(year: 2027, month: 1, day: 1, hour: 3)))
    }

    @Test func theServerRunsItOnlyWhenAskedAndItFreesWhatGCFrees() async throws {
        let off = try TestYard(sqlite: true)
        defer { off.dir.remove() }
        let quiet = TestYard.quiet
        #expect(!off.yard.services(app: off.yard.buildApplication(logger: quiet), logger: quiet).contains { $0.service is RetentionService })

        var schedule = try RetentionSchedule.parse("03:00")
        schedule.olderThan = 86400
        let t = try TestYard(sqlite: true, retention: schedule)
        defer { t.dir.remove() }
        #expect(t.yard.services(app: t.yard.buildApplication(logger: quiet), logger: quiet).contains { $0.service is RetentionService })

        // An old finished job and a running one, each with a run folder and a checkpoint.
        let parser = JobConfigParser { _ in true }
        for id in ["old-done", "running"] {
            let config = try parser.parse("model: yolov8n.yaml\ntrain: {data: \(t.data), epochs: 3}")
            try await t.yard.store.insert(Job(id: id, config: config, redacted: config.json, createdAt: Date()), secrets: [:])
            try await t.yard.store.update(id) { job in
                job.state = id == "running" ? .running : .succeeded
                job.startedAt = Date()
                if id != "running" { job.finishedAt = Date() }
            }
            _ = try t.dir.write("runs/\(id)/weights/last.pt", "checkpoint")
        }
        let service = RetentionService(schedule: schedule, dataDirectory: t.dir.path, logger: quiet)
        // Today nothing is old enough; two days on, the finished job's folder goes and the running one's stays.
        let today = try #require(await service.collect())
        #expect(today.files == 0)
        let later = try #require(await service.collect(now: Date().addingTimeInterval(2 * 86400)))
        #expect(later.removals.contains { $0.path == "runs/old-done" }, "\(later.removals.map(\.path))")
        #expect(!FileManager.default.fileExists(atPath: t.dir.file("runs/old-done")))
        #expect(FileManager.default.fileExists(atPath: t.dir.file("runs/running/weights/last.pt")))
    }
}
