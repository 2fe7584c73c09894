import Foundation
import Testing
import YardDomain
@testable import YardCLI

/// What `yard events` prints comes from outside (a worker's host, a trial's
/// values, a failure's message): an escape sequence in it must reach the
/// terminal as text, not recolour it or retitle the window.
@Suite("Terminal output")
struct TerminalOutputTests {
    @Test func controlCharactersInAnEventArePrintedAsEscapesNotSent() {
        let hostile: JSONValue = [
            "seq": 7, "time": "2026-12-06T00:00:00Z", "entity": "worker", "id": "w\u{1B}[2J", "type": "state",
            "data": ["state": "lost", "host": "box\u{1B}]0;pwned\u{07}\u{9B}31m\n"],
        ]
        let line = Events.line(hostile)
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }, "\(line.debugDescription)")
        #expect(line.contains("\\u{1B}]0;pwned\\u{7}"))
        #expect(line.contains("→ lost on box"))
        #expect(Output.printable("plain text, ünïcode ✓") == "plain text, ünïcode ✓")
    }
}
