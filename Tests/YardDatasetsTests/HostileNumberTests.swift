import Foundation
import Testing
import YardDomain
import YardTestSupport
@testable import YardDatasets

/// Issue 26, finding 2: numbers read from a file became integers unchecked;
/// `Int(1e19)` traps, and a COCO file with `"width": 1e19` stopped `yard up`
/// ("Illegal instruction") and `yard datasets validate` (exit 132). A trap
/// here would end this test process: the test fails by not finishing.
@Suite struct HostileNumberTests {
    @Test func checkedConversionsRefuseWhatDoesNotFit() {
        #expect(Int(checked: 1e19) == nil && Int(checked: -1e19) == nil)
        #expect(Int(checked: .infinity) == nil && Int(checked: .nan) == nil)
        #expect(Int(checked: 9_223_372_036_854_775_808.0) == nil)
        #expect(Int(checked: -9_223_372_036_854_775_808.0) == Int.min)
        #expect(Int(checked: 41.9) == 41 && Int(checked: -41.9) == -41)
        #expect(Int.saturating(1e300) == .max && Int.saturating(-.infinity) == .min && Int.saturating(.nan) == 0)
    }

    @Test func aCOCOImageOfAbsurdSizeIsReportedNamingItAndTheRestConverts() throws {
        let dir = try TemporaryDirectory("ds")
        defer { dir.remove() }
        for i in 1...4 { try write(jpegBytes(width: 100, height: 50, salt: UInt8(i)), dir.file("coco/images/\(i).jpg")) }
        let json = """
        {"images": [{"id": 1, "file_name": "1.jpg", "width": 1e19, "height": 50},
                    {"id": 2, "file_name": "2.jpg", "width": 100, "height": 1e308},
                    {"id": 3, "file_name": "3.jpg", "width": 100, "height": 50},
                    {"id": 4, "file_name": "4.jpg", "width": 100, "height": 50}],
         "categories": [{"id": 1, "name": "person"}],
         "annotations": [
           {"id": 10, "image_id": 1, "category_id": 1, "bbox": [90, 10, 20, 10]},
           {"id": 11, "image_id": 2, "category_id": 1, "bbox": [10, 10, 20, 10]},
           {"id": 12, "image_id": 3, "category_id": 1, "bbox": [10, 10, 1e300, 10]},
           {"id": 13, "image_id": 4, "category_id": 1, "bbox": [90, 40, 20, 20]}
         ]}
        """
        try dir.write("coco/annotations/instances.json", json)
        let plan = try DatasetPlan.make(source: dir.file("coco"), options: .init(ratios: [0.5, 0.5, 0], seed: 1))
        let problems = plan.problems.map { "\($0.kind): \($0.message)" }
        #expect(problems.count == 4, "\(problems)")
        #expect(problems[0].hasPrefix("bad_label: annotation 10: image 1 has width 1e+19"), "\(problems)")
        #expect(problems[0].contains("up to 1000000"))
        #expect(problems[1].hasPrefix("bad_label: annotation 11: image 2 has width 100.0 and height 1e+308"), "\(problems)")
        #expect(problems[2].hasPrefix("bad_label: annotation 12: bbox"), "\(problems)")
        #expect(problems[3].hasPrefix("out_of_range_box: annotation 13"), "\(problems)")
        #expect(problems.allSatisfy { !$0.contains("\n") })
    }

    /// Found by the fuzzer in CI (data.yaml, one input of 630 took 250 s):
    /// `nc: N` without names made N class names, four billion for `0x100000000`.
    @Test func aHugeClassCountIsRefusedNamingNcBeforeAnyNameIsMade() throws {
        let started = ContinuousClock.now
        for nc in [10_001, 4_294_967_296, 1 << 40] {
            let error = #expect(throws: YardError.self) { try DatasetPlan.parseNames(["nc": .int(nc)], file: "d.yaml") }
            #expect(error?.field == "d.yaml: nc" && error?.message.contains("at most 10000") == true, "\(error?.message ?? "")")
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(try DatasetPlan.parseNames(["nc": .int(3)], file: "d.yaml") == ["class0", "class1", "class2"])
    }

    @Test func aLabelRowWhoseClassIsHugeIsOutOfRangeNotATrap() {
        let text = "1e300 0.5 0.5 0.2 0.2\n9223372036854775808 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n"
        let checked = YOLOLabels.check(Array(text.utf8), file: "labels/a.txt", classCount: 2, keypoints: nil)
        #expect(checked.problems.map(\.kind) == ["class_out_of_range", "class_out_of_range"])
        #expect(checked.problems[0].message.hasPrefix("class 1e300 is beyond"), "\(checked.problems[0].message)")
        #expect(checked.classes == [0])
    }
}
