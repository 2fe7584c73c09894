import Foundation

/// One GPU as `nvidia-smi` reports it: what a worker registers and sends
/// with each heartbeat (utilisation, memory, temperature). Fields the
/// driver does not support (`[N/A]`, `[Not Supported]`) are nil.
public struct GPUStats: Sendable, Codable, Equatable {
    public var index: Int
    public var uuid: String?
    public var name: String
    public var memoryTotalMiB: Int?
    public var memoryUsedMiB: Int?
    public var utilizationPercent: Int?
    public var temperatureC: Int?

    public init(index: Int, uuid: String? = nil, name: String, memoryTotalMiB: Int? = nil, memoryUsedMiB: Int? = nil,
                utilizationPercent: Int? = nil, temperatureC: Int? = nil) {
        self.index = index
        self.uuid = uuid
        self.name = name
        self.memoryTotalMiB = memoryTotalMiB
        self.memoryUsedMiB = memoryUsedMiB
        self.utilizationPercent = utilizationPercent
        self.temperatureC = temperatureC
    }
}
