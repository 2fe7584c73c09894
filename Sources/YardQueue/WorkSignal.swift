/// Wakes workers waiting for work when a job is enqueued in this process.
/// Waiters also wake on their timeout (on the injected clock), so work
/// enqueued by another process is still found. No waiter polls.
actor WorkSignal {
    private let clock: any Clock<Duration>
    private var parked: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var waiting: Set<UInt64> = []
    private var nextID: UInt64 = 0

    init(clock: any Clock<Duration>) { self.clock = clock }

    func notify() {
        waiting.removeAll()
        let all = parked
        parked.removeAll()
        for continuation in all.values { continuation.resume() }
    }

    func wait(timeout: Duration) async {
        nextID += 1
        let id = nextID
        waiting.insert(id)  // before any suspension: a notify from now on wakes this waiter
        let clock = self.clock
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.park(id) }
            group.addTask {
                try? await clock.sleep(for: timeout)
                await self.wake(id)
            }
            await group.next()
            group.cancelAll()
            wake(id)
        }
    }

    private func park(_ id: UInt64) async {
        guard waiting.contains(id) else { return }
        await withCheckedContinuation { parked[id] = $0 }
    }

    private func wake(_ id: UInt64) {
        waiting.remove(id)
        parked.removeValue(forKey: id)?.resume()
    }
}
