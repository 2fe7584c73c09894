import Foundation
import Logging
import Synchronization
import Testing
import YardCLI

/// `--log-format json`: one JSON object a line with time, level, the job
/// and worker a line concerns, a request's id, the component and the message.
@Suite("JSON log lines")
struct JSONLogTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var objects: [[String: String]] {
            lines.withLock { $0 }.map { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]) ?? ["unparsed": line]
            }
        }
    }

    @Test func eachLineIsOneObjectWithTheJobTheWorkerAndTheRequest() throws {
        let lines = Lines()
        var logger = Logger(label: "yard.worker") { JSONLogHandler(label: $0, write: lines.append) }
        logger[metadataKey: "worker"] = "gpu-box-41-0"
        logger.warning("job 20261207-ab_c.1: uploading the checkpoint failed (training goes on): disk \"full\"\nsecond line\u{1}")
        logger.info("jobs resumed: a, b")
        logger.error("job: no id here")
        var request = Logger(label: "yard") { JSONLogHandler(label: $0, write: lines.append) }
        request[metadataKey: "hb.request.id"] = "req-7"
        request.error("unhandled error on GET /api/jobs/x", metadata: ["job_id": "x", "extra": "1"])
        request.debug("not logged at info")

        let raw = lines.lines.withLock { $0 }
        #expect(raw.count == 4)
        #expect(raw.allSatisfy { $0.hasSuffix("}\n") && $0.dropLast().firstIndex(of: "\n") == nil }, "one line each: \(raw)")
        let objects = lines.objects
        let first = objects[0]
        #expect(first["level"] == "warning" && first["job_id"] == "20261207-ab_c.1" && first["worker"] == "gpu-box-41-0")
        #expect(first["label"] == "yard.worker")
        #expect(first["message"] == "job 20261207-ab_c.1: uploading the checkpoint failed (training goes on): disk \"full\"\nsecond line\u{1}")
        let time = try #require(first["time"])
        #expect(time.hasSuffix("Z") && time.contains("T") && time.contains("."), "\(time)")
        #expect(objects[1]["job_id"] == nil && objects[1]["level"] == "info", "\"jobs ...\" names no job")
        #expect(objects[2]["job_id"] == nil)
        #expect(objects[3]["request_id"] == "req-7" && objects[3]["job_id"] == "x" && objects[3]["extra"] == "1" && objects[3]["worker"] == nil)
        #expect(Array(raw[0].prefix(9)) == Array("{\"time\":\""), "time comes first")
    }
}
