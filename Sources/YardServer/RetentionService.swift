import Foundation
import Logging
import ServiceLifecycle
import YardBackup
import YardDomain

/// `--gc-at HH:MM`: the server runs `yard gc` once a day at that local time.
/// The same code as the command (it reads what references what from the
/// store and re-checks each job just before a removal), off the event
/// loops; what it freed is one log line, each removal a debug line.
struct RetentionService: Service {
    let schedule: RetentionSchedule
    let dataDirectory: String
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let wait = schedule.next(after: Date()).timeIntervalSinceNow
                do { try await Task.sleep(for: .seconds(max(1, wait))) } catch { return }
                await collect()
            }
        }
    }

    @discardableResult
    func collect(now: Date = Date()) async -> RetentionResult? {
        let options = schedule.options(dataDirectory: dataDirectory, now: now)
        do {
            let result = try await offloadThrowing { () throws -> RetentionResult in try Retention.run(options) }
            for removal in result.removals {
                logger.debug("gc: removed \(removal.path) (\(removal.files) files, \(removal.bytes) bytes): \(removal.reason)")
            }
            logger.info("gc: freed \(result.bytes) bytes in \(result.files) files (\(result.removals.count) removals); next at \(schedule.next(after: Date()))")
            return result
        } catch let error as YardError {
            logger.warning("gc did not run: \(error.message)")
        } catch {
            logger.warning("gc did not run: \(error)")
        }
        return nil
    }
}
