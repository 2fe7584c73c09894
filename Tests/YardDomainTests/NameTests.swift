import Testing
import YardDomain

/// Issue 26, finding 13: a dataset named `-dash` was accepted, and the CLI
/// then read it as an option. Names that reach a command line start with a
/// letter or digit, as job ids do.
@Suite struct NameTests {
    @Test(arguments: ["-dash", "--help", ".hidden", "_under", "", "a b", "ü"])
    func aNameThatIsNotOneIsRefusedNamingTheField(name: String) {
        let error = #expect(throws: YardError.self) { try DatasetVersion.validateName(name) }
        #expect(throws: YardError.self) { try ModelVersion.validateName(name, field: "name") }
        #expect(error?.message.hasPrefix("name: ") == true && error?.message.hasSuffix("starting with a letter or digit") == true, "\(error?.message ?? "")")
    }

    @Test(arguments: ["shapes", "a-b_c.d", "7up", "Coco8"])
    func namesStillTaken(name: String) throws {
        try DatasetVersion.validateName(name)
        try ModelVersion.validateName(name, field: "name")
    }
}
