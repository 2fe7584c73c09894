import Foundation
import Testing

/// What `scripts/test.sh` starts and passes in: a real MLflow server, a real
/// S3 server, the `yard` binary and the engine's Python. Without them (a
/// bare `swift test`) the end-to-end suites are skipped and one test fails
/// with the one thing to do.
enum TestEnvironment {
    static let names = ["YARD_TEST_MLFLOW_URI", "YARD_TEST_S3_ENDPOINT", "YARD_BIN", "YARD_PYTHON"]
    static let missing = names.filter { ProcessInfo.processInfo.environment[$0] == nil }
    static var ready: Bool { missing.isEmpty }
}

@Test("the servers scripts/test.sh starts are there")
func theTestServersAreThere() throws {
    // Thrown, so the whole reason is on the failure's one line.
    if !TestEnvironment.ready {
        throw HarnessError("end-to-end tests need the servers scripts/test.sh starts (\(TestEnvironment.missing.joined(separator: ", ")) unset): run scripts/test.sh")
    }
}
