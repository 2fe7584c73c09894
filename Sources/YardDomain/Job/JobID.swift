/// Job ids double as folder names and MLflow run names, so they are confined
/// to a safe alphabet: letters, digits, `-`, `_`, `.`, at most 128 characters,
/// starting with a letter or digit (a leading `-` reads as a command-line
/// option, a leading `.` as a hidden file). Ids are unique regardless of case
/// (the store enforces it), since folder names may not be case-sensitive.
public enum JobID {
    public static func validate(_ id: String) throws(YardError) {
        let allowed = id.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 95 || c == 46
        }
        let first = id.utf8.first ?? 0
        let startsWell = (first >= 48 && first <= 57) || (first >= 65 && first <= 90) || (first >= 97 && first <= 122)
        guard !id.isEmpty, id.count <= 128, allowed, startsWell else {
            throw YardError.invalid("task_id", "\"\(id.prefix(40))\" must be 1-128 letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
    }

    public static func isValid(_ id: String) -> Bool { (try? validate(id)) != nil }

    /// A new id: `job-YYYYMMDD-HHMMSS-xxxxxx` from the given time and random bits.
    public static func generate(epochSeconds: Int, random: UInt32) -> String {
        let (date, time) = civil(epochSeconds)
        let hex = String(random & 0xFFFFFF, radix: 16)
        return "job-\(date)-\(time)-\(String(repeating: "0", count: 6 - hex.count))\(hex)"
    }

    /// UTC calendar date and time of a Unix timestamp (Howard Hinnant's days-from-civil inverse).
    private static func civil(_ t: Int) -> (String, String) {
        let days = t >= 0 ? t / 86400 : (t - 86399) / 86400
        let secs = t - days * 86400
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return ("\(y)\(two(m))\(two(d))", "\(two(secs / 3600))\(two(secs / 60 % 60))\(two(secs % 60))")
    }
}
