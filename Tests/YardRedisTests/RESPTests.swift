import NIOCore
import Testing
import YardRedis

/// RESP2 as redis-server speaks it: replies that arrive in pieces, nested
/// arrays, nulls, and input that breaks the protocol or its limits.
@Suite("RESP codec")
struct RESPTests {
    func parse(_ text: String, parser: RESPParser = RESPParser()) throws -> (RESPValue?, Int) {
        var buffer = ByteBuffer(string: text)
        let value = try parser.parse(&buffer)
        return (value, buffer.readableBytes)
    }

    @Test func commandsAreArraysOfBulkStrings() {
        let buffer = RESPEncoder.command(["XADD", "yard:jobs", "*", "spec", "héllo"])
        #expect(String(buffer: buffer) == "*5\r\n$4\r\nXADD\r\n$9\r\nyard:jobs\r\n$1\r\n*\r\n$4\r\nspec\r\n$6\r\nhéllo\r\n")
        // Lengths of several digits, an empty argument, and a count past nine.
        let long = String(repeating: "x", count: 1234)
        let many = ["EVALSHA", long, ""] + (0..<9).map(String.init)
        let expected = "*12\r\n$7\r\nEVALSHA\r\n$1234\r\n\(long)\r\n$0\r\n\r\n" + (0..<9).map { "$1\r\n\($0)\r\n" }.joined()
        #expect(String(buffer: RESPEncoder.command(many)) == expected)
    }

    @Test func everyReplyTypeParses() throws {
        #expect(try parse("+OK\r\n").0 == .simpleString("OK"))
        #expect(try parse("-ERR unknown command\r\n").0 == .error("ERR unknown command"))
        #expect(try parse(":-42\r\n").0 == .integer(-42))
        #expect(try parse("$5\r\nhe\r\nl\r\n").0 == .bulkString(Array("he\r\nl".utf8)))
        #expect(try parse("$0\r\n\r\n").0 == .bulkString([]))
        #expect(try parse("$-1\r\n").0 == .null)
        #expect(try parse("*-1\r\n").0 == .null)
        #expect(try parse("*0\r\n").0 == .array([]))
        let nested = "*2\r\n$3\r\n1-0\r\n*2\r\n$4\r\nspec\r\n$2\r\n{}\r\n"
        #expect(try parse(nested).0 == .array([.bulkString(Array("1-0".utf8)), .array([.bulkString(Array("spec".utf8)), .bulkString(Array("{}".utf8))])]))
        #expect(RESPValue.bulkString(Array("12".utf8)).int == 12)
    }

    @Test func aReplyCutAtAnyByteWaitsForTheRestAndConsumesNothing() throws {
        let whole = "*3\r\n:1\r\n$5\r\nhello\r\n*2\r\n+a\r\n$-1\r\n+NEXT\r\n"
        let expected = try parse(whole).0
        for cut in 0..<(whole.utf8.count - "+NEXT\r\n".utf8.count) {
            var buffer = ByteBuffer(bytes: Array(whole.utf8.prefix(cut)))
            #expect(try RESPParser().parse(&buffer) == nil, "cut at \(cut)")
            #expect(buffer.readableBytes == cut, "cut at \(cut) consumed bytes")
        }
        var buffer = ByteBuffer(string: whole)
        #expect(try RESPParser().parse(&buffer) == expected)
        #expect(try RESPParser().parse(&buffer) == .simpleString("NEXT"))
        #expect(buffer.readableBytes == 0)
    }

    @Test(arguments: [
        ("?x\r\n", "unknown reply type"),
        ("\r\n", "no type"),
        (":12a\r\n", "integer that is not one"),
        ("$-2\r\n", "length that is not one"),
        ("$abc\r\n", "length that is not one"),
        ("$3\r\nabcXY", "without its CRLF"),
        ("+OK\rX", "CR without LF"),
        ("$2000\r\n", "over the limit"),
        ("*2000\r\n", "over the limit"),
    ])
    func hostileRepliesAreProtocolErrors(input: String, message: String) {
        let parser = RESPParser(maxBulkBytes: 1000, maxDepth: 4, maxElements: 1000)
        var buffer = ByteBuffer(string: input)
        #expect {
            try parser.parse(&buffer)
        } throws: { error in
            (error as? RESPParser.ProtocolError)?.description.contains(message) == true
        }
    }

    @Test func nestingDeeperThanTheLimitIsAnError() {
        var buffer = ByteBuffer(string: String(repeating: "*1\r\n", count: 20) + ":1\r\n")
        #expect(throws: RESPParser.ProtocolError.self) { try RESPParser(maxDepth: 8).parse(&buffer) }
        var fine = ByteBuffer(string: String(repeating: "*1\r\n", count: 8) + ":1\r\n")
        #expect((try? RESPParser(maxDepth: 8).parse(&fine)) != nil)
    }

    @Test func aLineWithoutEndIsAnErrorOnceItIsLongerThan64KiB() {
        var buffer = ByteBuffer(string: "+" + String(repeating: "a", count: 70_000))
        #expect(throws: RESPParser.ProtocolError.self) { try RESPParser().parse(&buffer) }
    }
}
