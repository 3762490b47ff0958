import Foundation

extension DurableQueue {
    /// An item leased by `get`: acknowledge it with `taskDone(_:)` before `leaseDeadline`,
    /// or it is delivered again (at-least-once).
    public struct Delivery: Sendable {
        /// The item's value.
        public let value: Element
        /// How many times the item has been delivered, this time included: 1 the first time,
        /// more when an earlier consumer's lease ran out (it died, or was too slow).
        public let attempt: Int
        /// When the lease runs out, by the database server's clock.
        public let leaseDeadline: Date
        /// The item's row id in `durable_queue_items`.
        public let id: Int64
        /// This lease: `taskDone` deletes the row only while it still holds this token.
        let leaseToken: UUID
    }
}
