import Foundation
import Synchronization

/// Wrong tokens at the sign-in page, counted per client address: past
/// `limit` failures within `window`, that address is refused (429 with
/// Retry-After) until the window's first failure ages out, right token or
/// not, so the page cannot be used to guess tokens. A success clears the
/// address's count. At most `capacity` addresses are remembered (the
/// oldest forgotten first), so a flood of addresses costs bounded memory.
final class SignInLimiter: Sendable {
    let limit: Int
    let window: TimeInterval
    let capacity: Int
    private let failures = Mutex<[String: [Date]]>([:])

    init(limit: Int = 10, window: TimeInterval = 300, capacity: Int = 10_000) {
        self.limit = limit
        self.window = window
        self.capacity = capacity
    }

    /// Seconds to wait before this address may try again; nil: it may now.
    func retryAfter(_ address: String, now: Date = Date()) -> Int? {
        failures.withLock { table in
            let recent = (table[address] ?? []).filter { now.timeIntervalSince($0) < window }
            table[address] = recent.isEmpty ? nil : recent
            guard recent.count >= limit, let first = recent.first else { return nil }
            return max(1, Int((window - now.timeIntervalSince(first)).rounded(.up)))
        }
    }

    func failed(_ address: String, now: Date = Date()) {
        failures.withLock { table in
            if table[address] == nil, table.count >= capacity,
               let oldest = table.min(by: { ($0.value.last ?? .distantPast) < ($1.value.last ?? .distantPast) })?.key {
                table[oldest] = nil
            }
            var recent = (table[address] ?? []).filter { now.timeIntervalSince($0) < window }
            recent.append(now)
            table[address] = Array(recent.suffix(limit))
        }
    }

    func succeeded(_ address: String) {
        failures.withLock { $0[address] = nil }
    }
}
