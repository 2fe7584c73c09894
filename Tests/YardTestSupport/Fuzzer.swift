import Foundation

/// A small mutation fuzzer for the parsers of untrusted bytes: it starts
/// from seed inputs and mutates them (bit flips, byte and token inserts,
/// deletions, duplicated runs, splices of two inputs, hostile numbers),
/// calling `body` on each until its time is up. A parser that traps ends
/// the test process, so a crash fails the run; the seed it printed first
/// replays the same inputs (`YARD_FUZZ_SEED`).
///
/// Time per parser: `YARD_FUZZ_SECONDS` (default 2, the CI's bound;
/// `bench/fuzz.sh` runs longer).
public struct Fuzzer {
    public let name: String
    public let seed: UInt64
    private var state: UInt64

    /// Tokens that have broken parsers: numbers that overflow a conversion,
    /// nesting, quotes, separators, NULs and invalid UTF-8.
    static let tokens: [[UInt8]] = [
        "1e19", "-1e19", "1e308", "-1e308", "1e400", "NaN", "nan", "inf", "-inf", "9223372036854775808", "-9223372036854775809",
        "0", "-1", "-0", "0x7fffffff", "4294967296", "1e-400", ".5", "1.", "{", "}", "[", "]", "[[[[[[[[", "{{{{", "\"", "'", ":", ",",
        "\n", "\r\n", "\r\n\r\n", "\t", " ", "- ", "&a", "*a", "!!binary", "!!python/object", "---", "...", "%", "\\", "/", "..", "../",
        "\u{0}", "null", "true", "~", "=", ";", "--", "$-1\r\n", "*-1\r\n", "*99999999\r\n", "$99999999\r\n", ":9223372036854775807\r\n",
    ].map { Array($0.utf8) } + [[0xFF], [0xC3, 0x28], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0, 0, 0, 0], [0xFF, 0xFF, 0xFF, 0xFF], [0x7F, 0xFF, 0xFF, 0xFF]]

    public static var seconds: Double {
        ProcessInfo.processInfo.environment["YARD_FUZZ_SECONDS"].flatMap(Double.init) ?? 2
    }

    public init(_ name: String) {
        self.name = name
        let given = ProcessInfo.processInfo.environment["YARD_FUZZ_SEED"].flatMap(UInt64.init)
        seed = given ?? UInt64.random(in: 1...UInt64.max)
        state = seed
    }

    public mutating func next() -> UInt64 {
        // xorshift64*
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }

    public mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(next() % UInt64(bound)) }

    /// One to four mutations of `input`, sometimes spliced with `other`.
    public mutating func mutate(_ input: [UInt8], other: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + below(4)) {
            let at = below(bytes.count + 1)
            switch below(9) {
            case 0 where !bytes.isEmpty: bytes[min(at, bytes.count - 1)] ^= UInt8(1 << below(8))
            case 1 where !bytes.isEmpty: bytes[min(at, bytes.count - 1)] = UInt8(truncatingIfNeeded: next())
            case 2: bytes.insert(contentsOf: Self.tokens[below(Self.tokens.count)], at: at)
            case 3 where !bytes.isEmpty:
                let end = min(bytes.count, at + 1 + below(16))
                bytes.removeSubrange(min(at, bytes.count - 1)..<end)
            case 4 where !bytes.isEmpty:
                // A run repeated: long lines, deep nesting, many parts.
                let start = min(at, bytes.count - 1), end = min(bytes.count, start + 1 + below(32))
                let run = Array(bytes[start..<end])
                for _ in 0..<(1 + below(64)) { bytes.insert(contentsOf: run, at: start) }
            case 5 where !other.isEmpty:
                let from = below(other.count)
                bytes.replaceSubrange(at..<min(bytes.count, at + below(64)), with: other[from..<min(other.count, from + 1 + below(256))])
            case 6:
                // A number replaced by a hostile one.
                if let digit = bytes.indices.dropFirst(at).first(where: { bytes[$0] >= 48 && bytes[$0] <= 57 }) {
                    var end = digit
                    while end < bytes.count, (bytes[end] >= 48 && bytes[end] <= 57) || bytes[end] == 46 { end += 1 }
                    bytes.replaceSubrange(digit..<end, with: Self.tokens[below(11)])
                }
            case 7: bytes = Array(bytes.prefix(at))
            default: bytes.insert(UInt8(truncatingIfNeeded: next()), at: at)
            }
        }
        return bytes.count > 1 << 20 ? Array(bytes.prefix(1 << 20)) : bytes
    }

    /// The slowest input of the last `run`: how long it took and its first bytes.
    public private(set) var slowest: (seconds: Double, input: [UInt8]) = (0, [])

    /// Calls `body` on the seeds, then on mutations of a growing corpus
    /// (inputs that `body` found new answered `true` join it) until
    /// `seconds` pass. Returns how many inputs ran; `slowest` says which took
    /// longest (a parser that takes minutes on one input is a finding too).
    @discardableResult
    public mutating func run(seeds: [[UInt8]], seconds: Double = Fuzzer.seconds, _ body: ([UInt8]) -> Bool) -> Int {
        print("fuzz \(name): seed \(seed) (YARD_FUZZ_SEED=\(seed) replays it), \(seconds) s")
        var corpus = seeds
        var count = 0
        slowest = (0, [])
        func timed(_ input: [UInt8]) -> Bool {
            let started = Date()
            let new = body(input)
            let took = Date().timeIntervalSince(started)
            if took > slowest.seconds { slowest = (took, Array(input.prefix(512))) }
            return new
        }
        for input in seeds { _ = timed(input); count += 1 }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let input = mutate(corpus[below(corpus.count)], other: corpus[below(corpus.count)])
            if timed(input), corpus.count < 4096 { corpus.append(input) }
            count += 1
        }
        print("fuzz \(name): \(count) inputs, corpus \(corpus.count), slowest input \(String(format: "%.3f", slowest.seconds)) s")
        return count
    }
}
