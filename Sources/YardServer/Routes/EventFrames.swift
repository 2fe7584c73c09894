import Foundation
import Hummingbird
import Synchronization
import YardDomain

/// The SSE frames of the newest events, so that an event read by a hundred
/// `/api/events` streams is encoded once, not a hundred times. A frame
/// depends on its event alone (filters only pick which are sent); the
/// slots are indexed by sequence number, newest kept.
final class EventFrames: Sendable {
    private struct Slot {
        var id: Int64 = -1
        var frame = ByteBuffer()
    }

    private let slots: Mutex<[Slot]>
    private let capacity: Int

    init(capacity: Int = 4096) {
        self.capacity = capacity
        slots = Mutex(Array(repeating: Slot(), count: capacity))
    }

    func frame(_ event: JobEvent) throws -> ByteBuffer {
        let index = Int(event.id % Int64(capacity))
        if let hit = slots.withLock({ $0[index].id == event.id ? $0[index].frame : nil }) { return hit }
        let frame = ByteBuffer(string: try EventLogStream.frame(event))
        slots.withLock { $0[index] = Slot(id: event.id, frame: frame) }
        return frame
    }
}
