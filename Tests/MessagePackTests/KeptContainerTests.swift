import Foundation
import MessagePack
import Testing

/// The encoder hands a struct's keyed container out again once nothing holds it.
/// These tests hold containers past their value, past their call and past their
/// encoder, and nest values of one type inside each other, so a container reused
/// too early would write into the wrong value or reach a freed encoder.
@Suite("Keyed containers kept, reused and nested")
struct KeptContainerTests {
    /// Containers some values kept, to be used after their value is done.
    final class Keeper {
        var all: [KeyedEncodingContainer<Leaky.Keys>] = []
        func keep(_ container: KeyedEncodingContainer<Leaky.Keys>) { all.append(container) }
    }

    /// Keeps its container in `keeper` when `keeper` is set, and writes through
    /// one kept earlier when `useKept` is set.
    struct Leaky: Encodable {
        enum Keys: String, CodingKey { case id, more }
        enum InnerKeys: String, CodingKey { case x }
        var id: Int
        var keeper: Keeper?
        var useKept = false

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(id, forKey: .id)
            if useKept, var kept = keeper?.all.first {
                try kept.encode(id, forKey: .more)
            }
            if let keeper, !useKept { keeper.keep(container) }
        }
    }

    /// A tree: a value's container is live while its children, of the same type, encode.
    struct Node: Codable, Equatable {
        var value: Int
        var children: [Node]

        static func tree(depth: Int, width: Int, start: inout Int) -> Node {
            start += 1
            let value = start
            let children = depth == 0 ? [] : (0..<width).map { _ in tree(depth: depth - 1, width: width, start: &start) }
            return Node(value: value, children: children)
        }
    }

    /// The message of the error a kept container throws.
    static func isStale(_ error: any Error) -> Bool {
        guard case EncodingError.invalidValue(_, let context) = error else { return false }
        return context.debugDescription.contains("after the value it belongs to was finished")
    }

    @Test("values of one type nested in each other encode each into its own map")
    func nestedSameType() throws {
        var start = 0
        let tree = Node.tree(depth: 4, width: 3, start: &start)  // 121 nodes, 5 levels live at once
        let encoder = MessagePackEncoder()
        for _ in 0..<3 {  // again with the boxes the first call kept
            let bytes = try encoder.encode(tree)
            #expect(try MessagePackDecoder().decode(Node.self, from: bytes) == tree)
        }
    }

    @Test("a container used after its value is finished throws, in the same call")
    func usedAfterItsValue() throws {
        let keeper = Keeper()
        let values = [Leaky(id: 1, keeper: keeper), Leaky(id: 2, keeper: keeper, useKept: true)]
        #expect { try MessagePackEncoder().encode(values) } throws: { Self.isStale($0) }
        // The first value's map was not changed by the attempt: a fresh encode still works.
        let bytes = try MessagePackEncoder().encode([Leaky(id: 1)])
        #expect(try MessagePackValue(bytes: bytes) == [["id": 1]])
    }

    @Test("a container kept past its call throws on every use, in a later call or after its encoder is gone")
    func usedAfterItsCall() throws {
        let keeper = Keeper()
        var encoder: MessagePackEncoder? = MessagePackEncoder()
        // More kept at once than the encoder keeps boxes for (64), so some are not kept by it.
        let many = (0..<100).map { Leaky(id: $0, keeper: keeper) }
        let bytes = try encoder!.encode(many)
        #expect(try MessagePackValue(bytes: bytes) == .array((0..<100).map { ["id": .int(Int64($0))] }))

        // In a later call on the same encoder: the kept container does not write into it.
        #expect { try encoder!.encode(Leaky(id: 7, keeper: keeper, useKept: true)) } throws: { Self.isStale($0) }
        #expect(try MessagePackValue(bytes: encoder!.encode(Leaky(id: 8))) == ["id": 8])

        // After the encoder is gone: every use throws, and nothing reaches freed memory.
        encoder = nil
        for var container in keeper.all {
            #expect(container.codingPath.isEmpty)
            #expect { try container.encode(1, forKey: .id) } throws: { Self.isStale($0) }
            #expect { try container.encode("s", forKey: .id) } throws: { Self.isStale($0) }
            #expect { try container.encode([1, 2], forKey: .id) } throws: { Self.isStale($0) }
            #expect { try container.encodeNil(forKey: .id) } throws: { Self.isStale($0) }
            var nested = container.nestedContainer(keyedBy: Leaky.InnerKeys.self, forKey: .more)
            #expect(throws: EncodingError.self) { try nested.encode(1, forKey: .x) }
            var unkeyed = container.nestedUnkeyedContainer(forKey: .more)
            #expect(throws: EncodingError.self) { try unkeyed.encode(1) }
            #expect(unkeyed.count == 0 && unkeyed.codingPath.isEmpty)
            let superEncoder = container.superEncoder()
            #expect(superEncoder.codingPath.isEmpty)
            var superKeyed = superEncoder.container(keyedBy: Leaky.InnerKeys.self)
            #expect(throws: EncodingError.self) { try superKeyed.encode(1, forKey: .x) }
            var superSingle = superEncoder.singleValueContainer()
            #expect(throws: EncodingError.self) { try superSingle.encode(1) }
        }
    }

    /// Keeps the `Encoder` it is given, or its container, for use after its value.
    final class Grab {
        var encoder: (any Encoder)?
        var container: KeyedEncodingContainer<Leaky.Keys>?
    }

    /// Keeps its encoder and its container, then, as a parent, uses a kept child's
    /// container once the child is finished (the call still running).
    struct Grabbing: Encodable {
        enum Keys: String, CodingKey { case child, other }
        var grab: Grab
        var isParent = false

        func encode(to encoder: any Encoder) throws {
            if isParent {
                var container = encoder.container(keyedBy: Keys.self)
                try container.encode(Grabbing(grab: grab), forKey: .child)
                var kept = grab.container!
                var nested = kept.nestedContainer(keyedBy: Keys.self, forKey: .more)
                try? nested.encode(1, forKey: .other)
                var unkeyed = kept.nestedUnkeyedContainer(forKey: .more)
                _ = unkeyed.nestedContainer(keyedBy: Keys.self)
                _ = unkeyed.nestedUnkeyedContainer()
                _ = unkeyed.superEncoder()
                var superUnkeyed = kept.superEncoder(forKey: .more).unkeyedContainer()
                _ = superUnkeyed.nestedUnkeyedContainer()
            } else {
                grab.encoder = encoder
                var container = encoder.container(keyedBy: Leaky.Keys.self)
                try container.encode(1, forKey: .id)
                grab.container = container
            }
        }
    }

    @Test("a finished value's container, nested into within the call, throws and writes nothing")
    func nestedIntoAFinishedValue() throws {
        let encoder = MessagePackEncoder()
        #expect { try encoder.encode(Grabbing(grab: Grab(), isParent: true)) } throws: { Self.isStale($0) }
        #expect(try MessagePackValue(bytes: encoder.encode(Leaky(id: 3))) == ["id": 3])
    }

    @Test("an Encoder kept past its call hands out containers that throw, also once its encoder is gone")
    func encoderKeptPastItsCall() throws {
        let grab = Grab()
        var encoder: MessagePackEncoder? = MessagePackEncoder()
        _ = try encoder!.encode(Grabbing(grab: grab))
        var container = grab.encoder!.container(keyedBy: Leaky.Keys.self)
        var unkeyed = grab.encoder!.unkeyedContainer()
        var single = grab.encoder!.singleValueContainer()
        #expect(throws: EncodingError.self) { try single.encode(2) }
        // The next call does not share the kept encoder: what it writes is its own.
        #expect(try MessagePackValue(bytes: encoder!.encode(Leaky(id: 4))) == ["id": 4])
        #expect(throws: EncodingError.self) { try container.encode(2, forKey: .id) }
        #expect(try MessagePackValue(bytes: encoder!.encode(Leaky(id: 5))) == ["id": 5])
        encoder = nil
        grab.encoder = nil  // the last reference to the call's encoder
        #expect(throws: EncodingError.self) { try container.encode(2, forKey: .id) }
        #expect(throws: EncodingError.self) { try unkeyed.encode(2) }
        var nested = unkeyed.nestedContainer(keyedBy: Leaky.Keys.self)
        #expect(throws: EncodingError.self) { try nested.encode(2, forKey: .id) }
        var deeper = unkeyed.nestedUnkeyedContainer()
        _ = deeper.nestedUnkeyedContainer()
        #expect(throws: EncodingError.self) { try deeper.encode(2) }
        // A container kept from the value, nested into after the call.
        var kept = grab.container!
        var keptUnkeyed = kept.nestedUnkeyedContainer(forKey: .more)
        _ = keptUnkeyed.nestedContainer(keyedBy: Leaky.Keys.self)
        var superUnkeyed = kept.superEncoder().unkeyedContainer()
        _ = superUnkeyed.nestedUnkeyedContainer()
        #expect(throws: EncodingError.self) { try keptUnkeyed.encode(1) }
    }

    @Test("structs as arrays: a reused container follows the encoder's option in each call")
    func reusedFollowsOptions() throws {
        let encoder = MessagePackEncoder()
        let value = CodableTests.TwoContainers(a: 1, b: "two")
        for _ in 0..<2 {
            encoder.structEncodingStrategy = .array
            #expect(try MessagePackValue(bytes: encoder.encode(value)) == [1, "two"])
            encoder.structEncodingStrategy = .map
            #expect(try MessagePackValue(bytes: encoder.encode(value)) == ["a": 1, "b": "two"])
        }
    }
}
