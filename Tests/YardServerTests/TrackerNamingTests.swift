import Testing
import YardDomain
@testable import YardTracker

@Suite("MLflow names and params")
struct TrackerNamingTests {
    @Test(arguments: [
        ("metrics/mAP50-95(B)", "metrics/mAP50-95B"),
        ("metrics/precision(B)", "metrics/precisionB"),
        ("lr/pg0", "lr/pg0"),
        ("val:loss", "val_loss"),
        ("a,b=c+d@e#f%g", "a_b_c_d_e_f_g"),
        ("x[1]", "x1"),
        ("()", "_"),
    ])
    func metricNamesAreSanitisedToMLflowsAlphabet(name: String, expected: String) {
        #expect(MetricName.sanitize(name) == expected)
    }

    @Test func trainArgsFlattenToStringParams() {
        let flat = Dictionary(uniqueKeysWithValues: MLflowTracker.flatten(["epochs": 3, "imgsz": [640, 480], "aug": ["hsv": 0.5], "name": nil], prefix: ""))
        #expect(flat == ["epochs": "3", "imgsz": "[640,480]", "aug.hsv": "0.5", "name": "None"])
    }

    @Test func theConfigHashIsStableAndKeyOrderFree() {
        let a: JSONValue = ["model": "m", "train": ["epochs": 3, "data": "/d"]]
        let b: JSONValue = ["train": ["data": "/d", "epochs": 3], "model": "m"]
        #expect(MLflowTracker.hash(a) == MLflowTracker.hash(b))
        #expect(MLflowTracker.hash(a).count == 64)
        #expect(MLflowTracker.hash(a) != MLflowTracker.hash(["model": "m2"]))
    }
}
