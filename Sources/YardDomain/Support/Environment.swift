import Foundation

/// An environment variable's value; nil when it is unset or empty.
public func environmentValue(_ name: String) -> String? {
    ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
}
