import Foundation
import Logging
import ServiceLifecycle
import YardDomain
import YardStore

/// Keeps the event log to its retention (`--event-retention-days`): at
/// start and then every `period`, jobs' epoch, progress, log and artifact
/// events older than the window are removed; state changes and every other
/// entity's events stay. The sequence never restarts: the store keeps the
/// highest number removed, and readers below it are told.
struct EventRetentionService: Service {
    let store: any JobStore
    let retention: EventRetention
    var period: Duration = .seconds(3600)
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await prune()
                try? await Task.sleep(for: period)
            }
        }
    }

    func prune(now: Date = Date()) async {
        guard let cutoff = retention.cutoff(now: now) else { return }
        do {
            let removed = try await store.pruneEvents(before: cutoff)
            if removed > 0 { logger.info("event log: removed \(removed) epoch, progress, log and artifact events older than \(retention.days ?? 0) days") }
        } catch {
            logger.warning("event log: retention did not run: \(error)")
        }
    }
}
