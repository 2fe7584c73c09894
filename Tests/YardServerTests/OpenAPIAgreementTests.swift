import Foundation
import Hummingbird
import Testing
import YardDomain
@testable import YardServer

/// Issue 29: the spec and the router cannot disagree. Every route `yard up`
/// serves is in the document with the same method and path parameters, and
/// every operation of the document is served; each operation has an id, at
/// least one success response, and every `{parameter}` of its path declared.
@Suite("OpenAPI agreement")
struct OpenAPIAgreementTests {
    static func document() throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(OpenAPI.document.utf8))
    }

    /// `METHOD /path/{param}` of every operation in the document.
    static func operations(_ document: JSONValue) -> Set<String> {
        var all: Set<String> = []
        for (path, item) in document["paths"]?.objectValue ?? [:] {
            for method in (item.objectValue ?? [:]).keys where method != "parameters" { all.insert("\(method.uppercased()) \(path)") }
        }
        return all
    }

    @Test func everyRouteIsInTheSpecAndEveryOperationIsRouted() throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let all = t.yard.buildRouter().routes.map { (method: "\($0.method)", path: "\($0.path)") }
        // The API is /api, /health, /ready and /metrics; the rest are the dashboard's pages and assets (GET only).
        let api = all.filter { $0.path.hasPrefix("/api/") || ["/health", "/ready", "/metrics"].contains($0.path) }
        #expect(all.filter { !api.map(\.path).contains($0.path) }.allSatisfy { $0.method == "GET" }, "a page route that changes state belongs to the API")
        let routed = Set(api.map { "\($0.method) \($0.path)" })
        let specified = Self.operations(try Self.document())
        #expect(routed.subtracting(specified).sorted() == [], "served but not in /api/openapi.json")
        #expect(specified.subtracting(routed).sorted() == [], "in /api/openapi.json but not served")
    }

    @Test func everyOperationHasAnIdItsPathParametersAndResponses() throws {
        let document = try Self.document()
        var ids: [String] = []
        for (path, item) in document["paths"]?.objectValue ?? [:] {
            let captures = Set(path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) })
            for (method, operation) in item.objectValue ?? [:] {
                let name = "\(method.uppercased()) \(path)"
                guard let id = operation["operationId"]?.stringValue else {
                    Issue.record("\(name) has no operationId")
                    continue
                }
                ids.append(id)
                let declared = Set((operation["parameters"]?.arrayValue ?? []).filter { $0["in"] == "path" }.compactMap { $0["name"]?.stringValue })
                #expect(declared == captures, "\(name): path parameters declared \(declared.sorted()), in the path \(captures.sorted())")
                let responses = operation["responses"]?.objectValue ?? [:]
                #expect(responses.keys.contains { $0.hasPrefix("2") }, "\(name) has no success response")
                if operation["security"] != [] { #expect(responses["401"] != nil, "\(name) needs the token but does not say 401") }
            }
        }
        #expect(Set(ids).count == ids.count, "operationIds are unique: \(ids.sorted())")
    }
}
