import Foundation
import YardDomain

/// Writing to the terminal.
enum Output {
    static let isTTY = isatty(STDOUT_FILENO) == 1

    static func line(_ text: String) { raw(text + "\n") }

    /// Writes to stdout; a reader that went away (`yard jobs | head`) ends
    /// the command quietly, as for any Unix tool.
    static func raw(_ text: String) { raw(Data(text.utf8)) }

    static func raw(_ data: Data) {
        do { try FileHandle.standardOutput.write(contentsOf: data) } catch { exit(0) }
    }

    /// Text from outside (names, hosts, messages) made safe for a terminal:
    /// control characters (an escape sequence that would recolour, move the
    /// cursor or retitle the window) are shown as `\u{1B}`, never sent.
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if isControl(scalar) { out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}" } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// A line on stderr that must not be missed (`yard backup --include-secret-key`).
    static func warning(_ text: String) {
        let line = text.hasPrefix("WARNING") ? text : "warning: " + text
        try? FileHandle.standardError.write(contentsOf: Data((line + "\n").utf8))
    }

    static func error(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data(("error: " + text + "\n").utf8))
    }

    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        line(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int.saturating(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    static func number(_ value: Double) -> String {
        if value == 0 { return "0" }
        return abs(value) >= 100 ? String(format: "%.1f", value) : String(format: "%.4g", value)
    }
}
