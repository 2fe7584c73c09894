import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import YardDomain

/// The attack probe's request findings: bombs, encodings, media types,
/// query parameters and ids, each a 400 (or 409/415) naming the field.
@Suite("Hostile requests")
struct HostileRequestTests {
    static func residentBytes() -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "0 0"
        return (Int(text.split(separator: " ")[1]) ?? 0) * 4096
    }

    @Test func anAliasBombIsA400AndMemoryStaysFlat() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let before = Self.residentBytes()
        try await t.test { client in
            for depth in [3, 6, 9, 12] {
                var body = t.config()
                body += "extras:\n  l0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                for level in 1..<depth { body += "  l\(level): &l\(level) [\(Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ","))]\n" }
                let bomb = body
                try await client.execute(uri: "/api/jobs", method: .post, headers: [.contentType: "application/yaml"], body: ByteBuffer(string: bomb)) { response in
                    #expect(response.status == .badRequest)
                    #expect(response.json["field"] == "body")
                }
            }
            try await client.execute(uri: "/api/jobs", method: .get) { #expect($0.json["jobs"] == []) }
        }
        // 10^12 nodes when expanded (the probe saw +1 GB every 15 s); other tests share the process.
        #expect(Self.residentBytes() - before < 256 << 20)
    }

    @Test func invalidUTF8IsA400() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        var body = ByteBuffer(string: t.config("metadata: {content: \"caf"))
        body.writeBytes([0xC3, 0x28, 0xFF])
        body.writeString("\"}\n")
        let sent = body
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post, body: sent) { response in
                #expect(response.status == .badRequest)
                #expect(response.json["field"] == "body")
                #expect(response.json["message"]?.stringValue?.contains("UTF-8") == true)
            }
        }
    }

    @Test func aConfigMustBeSentAsYAMLOrJSON() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            for type in ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "image/png"] {
                try await client.execute(uri: "/api/jobs", method: .post, headers: [.contentType: type], body: ByteBuffer(string: t.config())) { response in
                    #expect(response.status == .unsupportedMediaType, "\(type)")
                    #expect(response.json["field"] == "Content-Type")
                }
            }
            for type in ["application/json; charset=utf-8", "application/yaml", "text/yaml", "TEXT/PLAIN"] {
                try await client.execute(uri: "/api/jobs", method: .post, headers: [.contentType: type], body: ByteBuffer(string: t.config())) {
                    #expect($0.status == .created, "\(type)")
                }
            }
        }
    }

    @Test func badQueryParametersAre400NamingThem() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: q1")))
        try await t.test { client in
            for (uri, field) in [("/api/jobs?limit=-1", "limit"), ("/api/jobs?limit=0", "limit"), ("/api/jobs?limit=abc", "limit"),
                                 ("/api/jobs?limit=100000", "limit"), ("/api/jobs/q1/events?after=abc", "after"),
                                 ("/api/jobs/q1/events?after=-5", "after"), ("/api/jobs/q1/logs?follow=maybe", "follow")] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .badRequest, "\(uri)")
                    #expect(response.json["field"]?.stringValue == field, "\(uri)")
                }
            }
            try await client.execute(uri: "/api/jobs/q1/events", method: .get, headers: [.init("Last-Event-ID")!: "abc"]) { response in
                #expect(response.status == .badRequest)
                #expect(response.json["field"] == "Last-Event-ID")
            }
            try await client.execute(uri: "/api/jobs?limit=1", method: .get) { #expect($0.json["jobs"]?.arrayValue?.count == 1) }
        }
    }

    @Test func idsDifferingOnlyInCaseCannotCoexist() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: t.config("task_id: Run1"))) { #expect($0.status == .created) }
            try await client.execute(uri: "/api/jobs", method: .post, body: ByteBuffer(string: t.config("task_id: run1"))) { response in
                #expect(response.status == .conflict)
                #expect(response.json["message"]?.stringValue?.contains("regardless of case") == true)
            }
        }
    }

    @Test func relativeDataPathsOverTheAPIAreRefused() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post,
                                     body: ByteBuffer(string: "model: yolov8n.yaml\ntrain: {data: ../../../etc}\n")) { response in
                #expect(response.status == .badRequest)
                #expect(response.json["field"] == "train.data")
                #expect(response.json["message"]?.stringValue?.contains("absolute") == true)
            }
        }
    }
}
