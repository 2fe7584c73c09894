import Foundation
import YardDomain

/// Draws a job's progress from its events: on a terminal one line redrawn in
/// place (epoch, a bar that moves within the epoch, losses, metrics, ETA);
/// otherwise one line per epoch.
struct ProgressView {
    let tty: Bool
    var epochs = 0
    var startEpoch = 0
    var startTime: Date?
    var lastMetrics: [String: Double] = [:]
    var state = "queued"
    var message: String?
    private var drawn = false

    init(tty: Bool = Output.isTTY) { self.tty = tty }

    mutating func handle(_ event: EventFollower.Event) {
        let p = event.data
        switch event.type {
        case "state":
            state = p["state"]?.stringValue ?? state
            message = p["message"]?.stringValue
            if state == "queued" || state == "stopping" { say(message.map { $0 == state ? state : "\(state): \($0)" } ?? state) }
        case "started":
            epochs = p["epochs"]?.intValue ?? epochs
            startEpoch = p["start_epoch"]?.intValue ?? 0
            startTime = Date()
            let device = p["device"]?.stringValue ?? "?"
            let ultralytics = p["versions"]?["ultralytics"]?.stringValue ?? "?"
            say("training on \(device) (ultralytics \(ultralytics))\(startEpoch > 0 ? ", resuming after epoch \(startEpoch)" : "")")
        case "progress":
            guard tty else { return }
            let epoch = p["epoch"]?.intValue ?? 0
            let batch = p["batch"]?.intValue ?? 0
            let batches = max(p["batches"]?.intValue ?? 1, 1)
            epochs = p["epochs"]?.intValue ?? epochs
            let within = Double(batch) / Double(batches)
            let losses = (p["losses"]?.objectValue ?? [:]).compactMapValues(\.doubleValue)
            draw(epoch: epoch, within: within, detail: "\(batch)/\(batches) " + Self.summary(losses, limit: 3))
        case "epoch":
            let epoch = p["epoch"]?.intValue ?? 0
            epochs = p["epochs"]?.intValue ?? epochs
            lastMetrics = (p["metrics"]?.objectValue ?? [:]).compactMapValues(\.doubleValue)
            let losses = (p["losses"]?.objectValue ?? [:]).compactMapValues(\.doubleValue)
            let seconds = p["seconds"]?.doubleValue ?? 0
            if tty {
                draw(epoch: epoch, within: 1, detail: Self.summary(Self.headline(lastMetrics)))
            } else {
                say("epoch \(epoch)/\(epochs) \(Output.duration(seconds))  \(Self.summary(losses, limit: 3))  \(Self.summary(Self.headline(lastMetrics)))  ETA \(eta(epoch: epoch, within: 1))")
            }
        case "failed":
            say("engine failed: \(p["error"]?.stringValue ?? "Error"): \(p["message"]?.stringValue ?? "")")
        default:
            break
        }
    }

    private func eta(epoch: Int, within: Double) -> String {
        guard let startTime, epochs > 0 else { return "--:--" }
        let done = Double(epoch - 1) + within - Double(startEpoch)
        let total = Double(epochs - startEpoch)
        guard done > 0 else { return "--:--" }
        let elapsed = Date().timeIntervalSince(startTime)
        return Output.duration(elapsed / done * (total - done))
    }

    private mutating func draw(epoch: Int, within: Double, detail: String) {
        let width = 20
        // `within` comes from the engine's batch counts: kept to 0...1 before it sizes the bar.
        let within = within.isFinite ? min(1, max(0, within)) : 0
        let filled = Int((within * Double(width)).rounded())
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let text = "epoch \(epoch)/\(epochs) \(bar) \(Int(within * 100))% \(detail) ETA \(eta(epoch: epoch, within: within))"
        Output.raw("\r\u{1B}[2K" + text)
        drawn = true
    }

    private mutating func say(_ text: String) {
        if drawn { Output.raw("\n"); drawn = false }
        Output.line(text)
    }

    mutating func finish() {
        if drawn { Output.raw("\n"); drawn = false }
    }

    /// mAP50, mAP50-95 (or top-1/top-5 accuracy) first.
    static func headline(_ metrics: [String: Double]) -> [String: Double] {
        let keys = metrics.keys.filter { $0.hasPrefix("metrics/") }
        return Dictionary(uniqueKeysWithValues: keys.map { (String($0.dropFirst(8)), metrics[$0]!) })
    }

    static func summary(_ values: [String: Double], limit: Int = 4) -> String {
        values.sorted { $0.key < $1.key }.prefix(limit)
            .map { "\($0.key.replacingOccurrences(of: "train/", with: "")) \(Output.number($0.value))" }
            .joined(separator: "  ")
    }
}
