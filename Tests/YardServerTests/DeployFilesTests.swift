import Foundation
import Testing
import YardTestSupport
import YardServer

/// `deploy/`: the alert rules checked and unit-tested by Prometheus' own
/// promtool, and the Grafana dashboard checked for structure; both may only
/// name metric families the server exports (`MetricCatalog.exported`), so
/// renaming a metric without them fails here.
@Suite("Deploy files")
struct DeployFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let alerts = root + "/deploy/prometheus/alerts.yaml"
    static let alertTests = root + "/deploy/prometheus/alerts_test.yaml"
    static let dashboard = root + "/deploy/grafana/trainyard.json"

    /// promtool from PATH; its absence is a failure that says how to install it, never a skip.
    static func promtool() throws -> String {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { $0 + "/promtool" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else {
            throw Missing(description: "promtool not found on PATH: install Debian's prometheus package (`apt-get install prometheus`; scripts/setup.sh --test does)")
        }
        return path
    }

    struct Missing: Error, CustomStringConvertible { var description: String }

    static func run(_ tool: String, _ arguments: [String]) throws -> (Int32, String) {
        try runTool(tool, arguments, in: root + "/deploy/prometheus")
    }

    /// The metric families a PromQL text names (`trainyard_*`, `yard_*`),
    /// a histogram's series read as its family.
    static func families(in text: String) -> Set<String> {
        Set(text.matches(of: /\b(?:trainyard|yard)_[a-z0-9_]+/).map { match in
            var name = String(match.output)
            for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) && !MetricCatalog.exported.contains(name) {
                name = String(name.dropLast(suffix.count))
            }
            return name
        })
    }

    @Test func promtoolChecksTheAlertRules() throws {
        let (status, output) = try Self.run(try Self.promtool(), ["check", "rules", Self.alerts])
        #expect(status == 0, "\(output)")
        #expect(output.contains("SUCCESS"), "\(output)")
    }

    /// alerts_test.yaml: no worker alive while jobs wait (and not while one
    /// is), a worker lost, a job waiting over an hour, the spool growing for
    /// 15 minutes (and not one that drains), the predict error rate over 1 %.
    @Test func promtoolUnitTestsTheAlerts() throws {
        let (status, output) = try Self.run(try Self.promtool(), ["test", "rules", Self.alertTests])
        #expect(status == 0, "\(output)")
        #expect(output.contains("SUCCESS"), "\(output)")
    }

    @Test func theAlertsNameOnlyExportedMetricsAndCoverTheAsks() throws {
        let text = try String(contentsOfFile: Self.alerts, encoding: .utf8)
        let named = Self.families(in: text)
        #expect(!named.isEmpty)
        #expect(named.subtracting(MetricCatalog.exported).isEmpty, "not exported: \(named.subtracting(MetricCatalog.exported).sorted())")
        for alert in ["TrainyardNoWorkerWhileJobsWait", "TrainyardWorkerLost", "TrainyardJobWaitingOverAnHour", "TrainyardTrackingSpoolGrowing",
                      "TrainyardPredictErrorRate", "TrainyardAPILatencyHigh"] {
            #expect(text.contains("alert: \(alert)\n"), "\(alert) missing")
        }
    }

    /// The dashboard: valid JSON with a Prometheus datasource variable;
    /// panels with unique ids, on the 24-column grid, each with queries;
    /// every query names only exported families, and every family the
    /// server records shows on some panel.
    @Test func theDashboardIsWellFormedAndNamesOnlyExportedMetrics() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.dashboard))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(root["title"] as? String == "Trainyard" && (root["uid"] as? String)?.isEmpty == false)
        #expect(root["schemaVersion"] is Int)
        let variables = (root["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        #expect(variables.contains { $0["type"] as? String == "datasource" && $0["query"] as? String == "prometheus" && $0["name"] as? String == "datasource" })
        let panels = try #require(root["panels"] as? [[String: Any]])
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(ids.count == panels.count && Set(ids).count == ids.count, "every panel has a unique id")
        var named: Set<String> = [], rows: [String] = []
        for panel in panels {
            let title = panel["title"] as? String ?? ""
            #expect(!title.isEmpty)
            let grid = try #require(panel["gridPos"] as? [String: Int], "\(title): gridPos")
            #expect((grid["x"] ?? -1) >= 0 && (grid["w"] ?? 0) > 0 && (grid["x"] ?? 0) + (grid["w"] ?? 0) <= 24 && (grid["h"] ?? 0) > 0, "\(title): \(grid)")
            if panel["type"] as? String == "row" {
                rows.append(title)
                continue
            }
            #expect(["timeseries", "stat", "gauge", "table", "bargauge"].contains(panel["type"] as? String ?? ""), "\(title)")
            #expect((panel["datasource"] as? [String: Any])?["uid"] as? String == "${datasource}", "\(title)")
            let targets = try #require(panel["targets"] as? [[String: Any]], "\(title): targets")
            #expect(!targets.isEmpty, "\(title): no query")
            for target in targets {
                let expr = try #require(target["expr"] as? String, "\(title): a target without expr")
                let families = Self.families(in: expr)
                #expect(!families.isEmpty, "\(title): \(expr) names no metric")
                #expect(families.subtracting(MetricCatalog.exported).isEmpty, "\(title): not exported: \(families.subtracting(MetricCatalog.exported).sorted())")
                named.formUnion(families)
            }
        }
        #expect(rows == ["Queue", "Workers", "GPU", "Jobs", "Tracking", "Serving", "HTTP API"])
        let unshown = Set(MetricCatalog.families.map(\.name)).subtracting(named)
        #expect(unshown.isEmpty, "families on no panel: \(unshown.sorted())")
    }

    /// The cross-check bites: a name the server does not export is caught.
    @Test func aRenamedMetricIsCaught() {
        let named = Self.families(in: "sum(rate(trainyard_http_request_total[5m])) + trainyard_queue_depth")
        #expect(named.subtracting(MetricCatalog.exported) == ["trainyard_http_request_total"])
    }
}
