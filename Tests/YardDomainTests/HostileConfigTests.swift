import Foundation
import Testing
import YardDomain

/// The attack probe's config findings: alias bombs, nesting, size, output
/// locations, paths over the API, and the small validation gaps.
@Suite("Hostile configs")
struct HostileConfigTests {
    let parser = JobConfigParser(baseDirectory: "/base") { _ in true }

    /// The classic "billion laughs": `depth` levels of ten aliases each.
    static func bomb(depth: Int, under key: String = "extras") -> String {
        var lines = ["model: yolov8n.yaml", "train: {data: /d.yaml}", "\(key):", "  l0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]"]
        for level in 1..<depth {
            let refs = Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ",")
            lines.append("  l\(level): &l\(level) [\(refs)]")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    @Test(arguments: [2, 4, 6, 9, 12])
    func aliasBombsAreRefusedBeforeExpansion(depth: Int) {
        let clock = ContinuousClock()
        let started = clock.now
        #expect(throws: YardError.self) { try parser.parse(Self.bomb(depth: depth), source: "body") }
        do { _ = try parser.parse(Self.bomb(depth: depth), source: "body") } catch {
            #expect(error.field == "body")
            #expect(error.message.contains("anchors"))
            #expect(error.message.contains("line 4"))
        }
        // 10^12 strings if expanded; refused while reading the events.
        #expect(clock.now - started < .seconds(5))
    }

    @Test func anAliasedMappingKeyIsRefusedWithoutHashingItsExpansion() {
        var text = Self.bomb(depth: 9)
        text += "metadata: {? *l8 : 1, ? *l7 : 2}\n"
        #expect(throws: YardError.self) { try parser.parse(text, source: "body") }
    }

    @Test(arguments: [
        "model: &m yolov8n.yaml\ntrain: {data: /d.yaml}\n",
        "model: yolov8n.yaml\ntrain: &t {data: /d.yaml}\nval: *t\n",
        "model: yolov8n.yaml\ntrain: {data: /d.yaml}\nextras: {a: &x [1], b: {<<: *x}}\n",
    ])
    func anyAnchorOrAliasIsRefused(text: String) throws {
        let error = try #require(throws: YardError.self) { try parser.parse(text, source: "body") }
        #expect(error.message.contains("anchors") || error.message.contains("aliases"))
    }

    @Test func deepNestingAndHugeListsAreRefused() throws {
        func nested(_ depth: Int) -> String {
            "model: yolov8n.yaml\ntrain: {data: /d.yaml}\nextras: {a: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}\n"
        }
        let deepError = try #require(throws: YardError.self) { try parser.parse(nested(40), source: "body") }
        #expect(deepError.message.contains("nested deeper than 32"))
        // Far deeper: libyaml's own limit ends it first; never a stack overflow.
        #expect(throws: YardError.self) { try parser.parse(nested(200_000), source: "body") }
        #expect(try parser.parse(nested(20), source: "body").document["extras"] != nil)
        let wide = "model: yolov8n.yaml\ntrain: {data: /d.yaml}\nextras: [" + Array(repeating: "1", count: 30_000).joined(separator: ",") + "]\n"
        let wideError = try #require(throws: YardError.self) { try parser.parse(wide, source: "body") }
        #expect(wideError.message.contains("more than"))
    }

    @Test func aStoredConfigIsCappedInSize() throws {
        let big = "model: yolov8n.yaml\ntrain: {data: /d.yaml}\nmetadata: {content: \"" + String(repeating: "x", count: 70_000) + "\"}\n"
        let error = try #require(throws: YardError.self) { try parser.parse(big, source: "body") }
        #expect(error.field == "config")
        #expect(error.message.contains("64 KiB"))
    }

    @Test(arguments: [
        ("train: {data: /d.yaml, save_dir: /tmp/elsewhere}", "train.save_dir"),
        ("train: {data: /d.yaml, project: /tmp}", "train.project"),
        ("train: {data: /d.yaml, name: x}", "train.name"),
        ("train: {data: /d.yaml, exist_ok: true}", "train.exist_ok"),
        ("train: {data: /d.yaml, cfg: /tmp/evil.yaml}", "train.cfg"),
        ("train: {data: /d.yaml, model: /tmp/x.pt}", "train.model"),
        ("train: {data: /d.yaml}\nval: {save_dir: /tmp/v}", "val.save_dir"),
        ("train: {data: /d.yaml}\nval: {project: /tmp}", "val.project"),
    ])
    func outputLocationsAreReserved(body: String, field: String) throws {
        let error = try #require(throws: YardError.self) { try parser.parse("model: yolov8n.yaml\n" + body, source: "body") }
        #expect(error.field == field)
        #expect(error.message.hasPrefix(field + ": "))
    }

    @Test func overTheAPILocalPathsMustBeAbsolute() throws {
        let api = JobConfigParser(baseDirectory: nil) { _ in true }
        for (text, field) in [("model: yolov8n.yaml\ntrain: {data: ../../../etc}", "train.data"),
                              ("model: yolov8n.yaml\ntrain: {data: data/demo.yaml}", "train.data"),
                              ("model: yolov8n.yaml\ntrain: {data: ~/d.yaml}", "train.data"),
                              ("model: weights/../../x.pt\ntrain: {data: /d.yaml}", "model")] {
            let error = try #require(throws: YardError.self) { try api.parse(text, source: "body") }
            #expect(error.field == field)
            #expect(error.message.contains("must be absolute"))
        }
        // Absolute paths are folded; bare model names are Ultralytics'.
        let config = try api.parse("model: yolov8n.yaml\ntrain: {data: /a/b/../d.yaml}", source: "body")
        #expect(config.data == "/a/d.yaml")
        #expect(config.model == "yolov8n.yaml")
        // The CLI resolves against the config's folder.
        #expect(try parser.parse("model: yolov8n.yaml\ntrain: {data: ../d.yaml}").data == "/d.yaml")
    }

    @Test(arguments: [
        ("train: {data: /d.yaml, imgsz: []}", "train.imgsz"),
        ("train: {data: /d.yaml, imgsz: [1, 2, 3]}", "train.imgsz"),
        ("task_id: -rf\ntrain: {data: /d.yaml}", "task_id"),
        ("task_id: _x\ntrain: {data: /d.yaml}", "task_id"),
    ])
    func validationGaps(body: String, field: String) throws {
        let error = try #require(throws: YardError.self) { try parser.parse("model: yolov8n.yaml\n" + body, source: "body") }
        #expect(error.field == field)
    }
}
