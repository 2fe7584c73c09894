import Testing
@testable import YardDatasets

/// What a report may quote of a file: short, one line, no control characters.
@Suite struct ExcerptTests {
    @Test func anExcerptIsShortEscapedAndOneLine() {
        #expect(Excerpt.of("cat") == "cat")
        #expect(Excerpt.of("0123456789abcdefghij") == "0123456789abcdef…")
        #expect(Excerpt.of("a\u{1B}[2Jb\n\"\\", limit: 40) == "a\\u{1B}[2Jb\\n\\\"\\\\")
        #expect(Excerpt.of("\u{202E}évil", limit: 40) == "\\u{202E}évil")  // a bidi override is shown, not obeyed
        let long = Excerpt.of(String(repeating: "\u{7}", count: 1000))
        #expect(long.count <= 16 * 8 + 1 && !long.unicodeScalars.contains { $0.properties.generalCategory == .control })
    }
}
