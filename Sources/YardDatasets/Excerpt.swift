/// What a message may quote of a file, a name or a row: at most `limit`
/// characters, every control or format character (an escape sequence, a
/// newline, a bidi override) and the backslash and quote written escaped,
/// so a report stays one line and a terminal shows it as it is.
public enum Excerpt {
    public static func of<S: StringProtocol>(_ text: S, limit: Int = 16) -> String {
        var out = ""
        var shown = 0
        for scalar in text.unicodeScalars {
            let piece: String
            switch scalar {
            case "\\": piece = "\\\\"
            case "\"": piece = "\\\""
            case "\n": piece = "\\n"
            case "\r": piece = "\\r"
            case "\t": piece = "\\t"
            default:
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                    piece = "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                default:
                    piece = String(scalar)
                }
            }
            guard shown < limit else { return out + "…" }
            out += piece
            shown += 1
        }
        return out
    }
}
