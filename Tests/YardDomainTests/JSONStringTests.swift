import Foundation
import Testing
import YardDomain

/// One escaper, three dialects: each must read back as the same string,
/// and each differs from the others only where it says.
@Suite("JSON string literals")
struct JSONStringTests {
    static let text = "a/\"b\\\n\r\t\u{8}\u{C}\u{0}\u{1F} \u{7F}é😀"

    @Test func eachDialectEscapesWhatItSaysAndReadsBack() throws {
        #expect(JSONString.quote(Self.text, JSONString.foundation) == #""a\/\"b\\\n\r\t\b\f\u0000\u001f \#u{7F}é😀""#)
        #expect(JSONString.quote(Self.text, JSONString.plain) == #""a/\"b\\\n\r\t\b\f\u0000\u001f \u007fé😀""#)
        #expect(JSONString.quote(Self.text, JSONString.python) == #""a/\"b\\\n\r\t\b\f\u0000\u001f \u007f\u00e9\ud83d\ude00""#)
        for dialect in [JSONString.foundation, JSONString.plain, JSONString.python] {
            let quoted = JSONString.quote(Self.text, dialect)
            #expect(try JSONDecoder().decode(String.self, from: Data(quoted.utf8)) == Self.text)
        }
    }
}
