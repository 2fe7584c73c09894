import Testing
import YardDomain

/// Found by `bench/fuzz.sh` (data.yaml, 20 s): a plain scalar such as
/// `99999999999:59:59:59:59` is a YAML 1.1 base-60 integer, and Yams' own
/// reading of it traps on overflow (`Int.+`), which would stop `yard up` on
/// a dataset YAML or a job config. Base-60 numbers are read with overflow
/// checked, as PyYAML reads them; one too large is an error naming its field.
@Suite struct YAMLNumberTests {
    @Test func aBase60NumberTooLargeIsAnErrorNamingItsField() {
        for text in ["epochs: 99999999999:59:59:59:59:59", "train: {epochs: -153722867280912930:59}", "x: 9999999999999999999999:00"] {
            let error = #expect(throws: YardError.self) { try JobConfigParser.decodeDocument(text) }
            #expect(error?.message.contains("base-60 number too large") == true, "\(text): \(error?.message ?? "")")
        }
        let nested = #expect(throws: YardError.self) { try JobConfigParser.decodeDocument("train: {epochs: 99999999999:59:59:59:59:59}") }
        #expect(nested?.field == "train.epochs")
    }

    @Test func base60NumbersReadAsPyYAMLReadsThem() throws {
        let document = try JobConfigParser.decodeDocument("""
            a: 1:30
            b: -1:00:30
            c: 1:30.5
            d: 0:30
            e: 1:60
            f: '1:30'
            g: 1_0:00
            h: 12:30:00
            """)
        #expect(document["a"] == .int(90))
        #expect(document["b"] == .int(-3630))
        #expect(document["c"] == .double(90.5))
        #expect(document["d"] == .string("0:30"))
        #expect(document["e"] == .string("1:60"))
        #expect(document["f"] == .string("1:30"))
        #expect(document["g"] == .int(600))
        #expect(document["h"] == .int(45000))
    }
}
