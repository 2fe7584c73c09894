import Foundation

/// When a failed delivery is tried again: `base` doubled after each failure
/// up to `cap`, with jitter (each wait is 50-100% of its step, so receivers
/// that come back are not hit by every server at once), given up once
/// `giveUpAfter` has passed since the first try.
public struct WebhookBackoff: Sendable, Hashable {
    public var base: TimeInterval
    public var cap: TimeInterval
    public var giveUpAfter: TimeInterval

    public init(base: TimeInterval = 30, cap: TimeInterval = 3600, giveUpAfter: TimeInterval = 86_400) {
        self.base = base
        self.cap = cap
        self.giveUpAfter = giveUpAfter
    }

    /// The step after the `failures`-th failure (1: `base`), before jitter.
    public func step(afterFailure failures: Int) -> TimeInterval {
        let doublings = Double(min(max(failures, 1) - 1, 40))
        return min(cap, base * pow(2, doublings))
    }

    /// The wait after the `failures`-th failure; `random` in 0..<1 picks the jitter.
    public func delay(afterFailure failures: Int, random: Double) -> TimeInterval {
        step(afterFailure: failures) * (0.5 + 0.5 * min(max(random, 0), 1))
    }

    /// Whether a delivery first tried at `first` is given up at `now`.
    public func givesUp(first: Date, now: Date) -> Bool { now.timeIntervalSince(first) >= giveUpAfter }
}
