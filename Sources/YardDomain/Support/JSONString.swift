/// A JSON string literal written by hand, where the exact text matters: a
/// hash is taken of it (a ticket's group, a DVC directory listing) or a
/// line is built without an encoder (the server's JSON log). One escaper;
/// the dialects differ only in what else they escape.
public enum JSONString {
    public struct Dialect: Sendable {
        /// `/` as `\/`.
        public var escapesSlash = false
        /// DEL (0x7F) as `\u007f`.
        public var escapesDelete = false
        /// Everything past DEL as `\uXXXX` (UTF-16 units).
        public var asciiOnly = false
    }

    /// What Foundation's JSONEncoder writes.
    public static let foundation = Dialect(escapesSlash: true)
    /// Python's `json.dumps` (`ensure_ascii=True`, its default).
    public static let python = Dialect(escapesDelete: true, asciiOnly: true)
    /// Control characters and DEL escaped, the rest as it is (log lines).
    public static let plain = Dialect(escapesDelete: true)

    public static func quote(_ text: String, _ dialect: Dialect) -> String {
        var out = ""
        quote(text, dialect, into: &out)
        return out
    }

    public static func quote(_ text: String, _ dialect: Dialect, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "/" where dialect.escapesSlash: out += "\\/"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{8}": out += "\\b"
            case "\u{C}": out += "\\f"
            case _ where scalar.value < 0x20 || (scalar.value == 0x7F && dialect.escapesDelete) || (scalar.value > 0x7F && dialect.asciiOnly):
                for unit in String(scalar).utf16 { escape(unit, into: &out) }
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// `\u` and four lowercase hex digits.
    static func escape(_ unit: UInt16, into out: inout String) {
        out += "\\u"
        for shift in stride(from: 12, through: 0, by: -4) {
            let digit = UInt8((unit >> UInt16(shift)) & 0xF)
            out.unicodeScalars.append(Unicode.Scalar(digit < 10 ? 0x30 + digit : 0x57 + digit))  // 0-9, a-f
        }
    }
}
