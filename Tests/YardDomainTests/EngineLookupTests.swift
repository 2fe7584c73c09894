import Foundation
import Testing
import YardEngine

/// Which Python an installed `yard` runs the engine with (issue 30): the
/// `PREFIX/share/trainyard/python` that a release archive's install.sh
/// writes beside the engine, when it is there and executable, before the
/// setup script's cache and `python3` on PATH.
@Suite struct EngineLookupTests {
    @Test func theInstalledPythonBesideTheEngineIsFoundOnlyWhenExecutable() throws {
        let share = FileManager.default.temporaryDirectory.appendingPathComponent("yard share \(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: share) }
        try FileManager.default.createDirectory(atPath: share + "/engine", withIntermediateDirectories: true)
        #expect(EngineEnvironment.installedPython(engineDirectory: share + "/engine") == nil, "nothing installed")
        let python = share + "/python"
        try "#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n".write(toFile: python, atomically: true, encoding: .utf8)
        #expect(EngineEnvironment.installedPython(engineDirectory: share + "/engine") == nil, "not executable: not used")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: python)
        #expect(EngineEnvironment.installedPython(engineDirectory: share + "/engine") == python)
        #expect(EngineEnvironment.installedPython(engineDirectory: share + "/engine/") == python, "a trailing slash reads the same")
    }
}
