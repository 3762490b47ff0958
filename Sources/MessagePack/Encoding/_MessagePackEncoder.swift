#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The encoder behind one `MessagePackEncoder.encode` call.
///
/// A map's or array's header holds its element count, which a Codable container
/// only knows when it is done. So every value under construction is an *entry* on
/// a stack. A value writes straight into its parent's buffer, behind a one-byte
/// placeholder for its header; when it is finished (when its `encode(to:)`
/// returns) the placeholder becomes the header — a fix-format byte for up to 15
/// elements, else the longer header is inserted. Nested containers and super
/// encoders write into buffers of their own instead, spliced into their parent
/// where they were created when the parent's value finishes, so they may be filled
/// in any order, as Codable allows. Buffers are msgpack-c's, reused across calls.
///
/// This object is also the `Encoder` passed to `encode(to:)`: it stands for the
/// entry of the value being encoded (`current`), as swift-foundation's JSON
/// encoder does, so descending into a value allocates no encoder.
final class _MessagePackEncoder: Encoder, _ReusableCoder {
    enum Kind { case slot, map, array, single }

    struct Entry {
        var kind: Kind
        /// Elements of an array, pairs of a map, values in a single-value slot.
        var count = 0
        /// Tells a live entry from a finished one at the same depth.
        var serial: Int
        /// The entry this one's bytes go into.
        var parent: Int
        /// For an entry with a buffer of its own: where in the parent's buffer it is
        /// spliced when finished. `nil` for an entry that writes in its parent's buffer.
        var offset: Int?
        var path: _CodingPathNode
        /// The buffer it writes in.
        var buffer: Int
        /// Where its bytes start in that buffer (its header placeholder, for a map or array).
        var start: Int
    }

    // The hot state is only ever touched by the one thread running this encode, and
    // never through overlapping inout accesses: the runtime's exclusivity checks cost
    // an eighth of the encoding time, so they are turned off for these properties.
    var options: MessagePackEncoder.Options {
        didSet {
            structsAsArrays = options.structEncodingStrategy == .array
            integerKeys = options.keyEncodingStrategy == .integer
            dateStrategy = options.dateEncodingStrategy
        }
    }
    /// Which version of its `MessagePackEncoder`'s options `options` is.
    @exclusivity(unchecked) var optionsVersion = 0
    /// The options read on every field, as plain values.
    @exclusivity(unchecked) private(set) var structsAsArrays = false
    @exclusivity(unchecked) private(set) var integerKeys = false
    @exclusivity(unchecked) private(set) var dateStrategy = MessagePackEncoder.DateEncodingStrategy.timestamp
    @exclusivity(unchecked) var entries = _EntryStack<Entry>()
    @exclusivity(unchecked) private var buffers: [_Packer] = []
    /// Buffers in use: the root's, and one per live entry with a buffer of its own.
    @exclusivity(unchecked) private var ownBuffers = 0
    /// Where headers are packed before they replace their placeholder.
    private let scratch = _Packer.make()
    /// Keyed containers handed out, to be handed out again (kept across calls).
    @exclusivity(unchecked) private var keyedContainers = _KeyedContainers()
    /// True while `encodeTopLevel` runs: a container asked for outside it (of an
    /// `Encoder` kept past its call) is handed out dead.
    @exclusivity(unchecked) private var inCall = false
    @exclusivity(unchecked) private var nextSerial = 0
    /// The entry of the value whose `encode(to:)` is running.
    @exclusivity(unchecked) private(set) var current = 0
    /// What each type met so far needs: its special form, or none (kept across calls).
    @exclusivity(unchecked) private var types = _TypeCache<any _MessagePackEncodeSpecially.Type>()
    /// A misuse found where Codable gives no way to throw (`container(keyedBy:)`),
    /// thrown by the next write or when the value finishes.
    var deferredError: EncodingError? { didSet { hasDeferredError = deferredError != nil } }
    /// Checked on every write: cheaper than comparing the optional error.
    @exclusivity(unchecked) private(set) var hasDeferredError = false

    deinit {
        // The buffers are handles to memory this encoder owns; containers that hold
        // one also hold the encoder, so none is used after this.
        for buffer in buffers { buffer.destroy() }
        scratch.destroy()
        entries.destroy()
        keyedContainers.destroy()
    }

    init(options: MessagePackEncoder.Options) {
        self.options = options
        structsAsArrays = options.structEncodingStrategy == .array
        integerKeys = options.keyEncodingStrategy == .integer
        dateStrategy = options.dateEncodingStrategy
    }

    // MARK: Encoder

    var codingPath: [any CodingKey] { entries[current].path.path }
    var userInfo: [CodingUserInfoKey: Any] { options.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        container(keyedBy: type, at: current)
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        unkeyedContainer(at: current)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        singleValueContainer(at: current)
    }

    // MARK: Containers of an entry (also used by super encoders)

    // Outside a call (an `Encoder` kept by an `encode(to:)` and used after it) every
    // container is handed out stale: its writes throw.

    func container<Key: CodingKey>(keyedBy type: Key.Type, at index: Int) -> KeyedEncodingContainer<Key> {
        guard inCall else { return staleKeyedContainer(type) }
        let kind: Kind = structsAsArrays ? .array : .map
        claim(index, as: kind, for: "a keyed container")
        return keyedContainer(Key.self, for: index)
    }

    /// A keyed container of entry `index`, which is a map or array already.
    func keyedContainer<Key: CodingKey>(_: Key.Type, for index: Int) -> KeyedEncodingContainer<Key> {
        keyedContainers.container(
            keyedBy: Key.self, encoder: self, index: index, serial: entries[index].serial, out: buffer(index),
            isLive: inCall)
    }

    // Containers and a super encoder whose every use throws: a stale super
    // encoder's, a finished value's nested ones, or those asked for outside a call.
    // Serial -1 names no entry (serials start at 1).

    func staleKeyedContainer<Key: CodingKey>(_: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(_KeyedContainer<Key>(state: _KeyedContainerState(
            encoder: self, index: 0, serial: -1, out: scratch, isLive: false)))
    }

    func staleUnkeyedContainer() -> any UnkeyedEncodingContainer {
        _UnkeyedContainer(encoder: self, index: 0, serial: -1)
    }

    func staleSingleValueContainer() -> any SingleValueEncodingContainer {
        _SingleValueContainer(encoder: self, index: 0, serial: -1)
    }

    func staleSuperEncoder() -> any Encoder {
        _SuperEncoder(encoder: self, index: 0, serial: -1)
    }

    /// An encoder of its own with no entries, for a container whose call is over:
    /// the containers it hands out throw on use, without reaching the gone call's encoder.
    static func detached() -> _MessagePackEncoder {
        _MessagePackEncoder(options: .init())
    }

    func unkeyedContainer(at index: Int) -> any UnkeyedEncodingContainer {
        guard inCall else { return staleUnkeyedContainer() }
        claim(index, as: .array, for: "an unkeyed container")
        return _UnkeyedContainer(encoder: self, index: index, serial: entries[index].serial)
    }

    func singleValueContainer(at index: Int) -> any SingleValueEncodingContainer {
        guard inCall else { return staleSingleValueContainer() }
        claim(index, as: .single, for: "a single value container")
        return _SingleValueContainer(encoder: self, index: index, serial: entries[index].serial)
    }

    /// Turns an empty slot into a container; asking again for the same kind gives
    /// the same container ("several containers on one encoder" share one map).
    private func claim(_ index: Int, as kind: Kind, for what: String) {
        let existing = entries[index].kind
        if existing == .slot {
            open(index, as: kind)
        } else if existing != kind || kind == .single && entries[index].count > 0 {
            deferredError = deferredError ?? EncodingError.invalidValue((), .init(
                codingPath: entries[index].path.path,
                debugDescription: "Asked for \(what) where this value already has a container of another kind."))
        }
    }

    /// Gives an entry its kind; a map or array gets a header placeholder before its first element.
    private func open(_ index: Int, as kind: Kind) {
        entries[index].kind = kind
        if kind == .map || kind == .array {
            let out = buffers[entries[index].buffer]
            entries[index].start = out.count
            out.packNil()  // one byte, replaced by the header when the count is known
        }
    }

    // MARK: The stack

    /// Starts a value that goes into `parent`: written in the parent's buffer, or,
    /// with an `offset`, in a buffer of its own spliced into the parent's there.
    func push(parent: Int, offset: Int?, kind: Kind, path: _CodingPathNode) -> Int {
        let index = entries.count
        let buffer: Int
        if offset != nil || index == 0 {
            buffer = ownBuffers
            ownBuffers += 1
            while buffers.count <= buffer { buffers.append(_Packer.make()) }
            buffers[buffer].removeAll()
        } else {
            buffer = entries[parent].buffer
        }
        nextSerial += 1
        entries.append(Entry(
            kind: .slot, serial: nextSerial, parent: parent, offset: offset, path: path,
            buffer: buffer, start: buffers[buffer].count))
        if kind != .slot { open(index, as: kind) }
        return index
    }

    /// The buffer entry `index` writes in.
    @inline(__always) func buffer(_ index: Int) -> _Packer { buffers[entries[index].buffer] }

    /// Checks that a container still refers to a live entry and that nothing is pending.
    /// Untyped `throws`, and the error made out of line: a typed throw of
    /// `EncodingError` (whose size the compiler does not know) costs every field two
    /// metadata lookups and a stack allocation, even when nothing is thrown.
    @inline(__always) func check(_ index: Int, _ serial: Int) throws {
        guard isLive(index, serial) else { throw checkFailure() }
    }

    @inline(__always) private func isLive(_ index: Int, _ serial: Int) -> Bool {
        holds(index, serial) && !hasDeferredError
    }

    /// Whether entry `index` is still the one a container was made for.
    @inline(__always) func holds(_ index: Int, _ serial: Int) -> Bool {
        index >= 0 && index < entries.count && entries[index].serial == serial
    }

    /// A container's coding path: empty once its value is finished.
    func path(of index: Int, _ serial: Int) -> [any CodingKey] {
        holds(index, serial) ? entries[index].path.path : []
    }

    /// `check` where Codable gives no way to throw: the failure is kept for the next write.
    func checkLater(_ index: Int, _ serial: Int) -> Bool {
        if isLive(index, serial) { return true }
        deferredError = checkFailure()
        return false
    }

    @inline(never) private func checkFailure() -> EncodingError {
        deferredError ?? Self.staleContainer()
    }

    /// The error of a container used after its value was finished.
    @inline(never) static func staleContainer() -> EncodingError {
        EncodingError.invalidValue((), .init(
            codingPath: [], debugDescription: "A container was used after the value it belongs to was finished."))
    }

    /// Finishes entries down to and including `index`: each gets its header, and an
    /// entry with a buffer of its own is spliced into its parent's.
    func finish(downTo index: Int) throws {
        while entries.count > index {
            let entry = entries.removeLast()
            let out = buffers[entry.buffer]
            switch entry.kind {
            case .map, .array:
                try _checkLengthUntyped(entry.count, of: (), codingPath: entry.path.path)
                scratch.removeAll()
                if entry.kind == .map { scratch.packMapHeader(entry.count) } else { scratch.packArrayHeader(entry.count) }
                out.replaceByte(at: entry.start, with: scratch.bytes)
            case .single where entry.count == 1:
                break
            case .slot, .single:
                // Nothing was encoded (an unused super encoder, an empty type): an empty map, as JSON writes {}.
                out.packMapHeader(0)
            }
            if let offset = entry.offset {
                buffers[entries[entry.parent].buffer].insert(out.bytes, at: offset)
                out.removeAll()
                ownBuffers -= 1
            }
            if out.failed || buffer(entry.parent).failed {
                throw EncodingError.invalidValue((), .init(codingPath: entry.path.path, debugDescription: "Out of memory."))
            }
        }
    }

    /// Drops entries down to and including `index` after an error, releasing their
    /// own buffers; the container that started the value removes its bytes
    /// (`encodeElement`).
    func abandon(downTo index: Int) {
        while entries.count > index {
            if entries.removeLast().offset != nil {
                ownBuffers -= 1
            }
        }
    }

    // MARK: Values

    /// Encodes one value. The encoder may be used again afterwards: its buffers are kept.
    func encodeTopLevel<T: Encodable>(_ value: T) throws -> [UInt8] {
        try encodeTopLevel(value) { $0.makeArray() }
    }

    /// Encodes one value and hands `body` the buffer holding its bytes.
    func encodeTopLevel<T: Encodable, R>(_ value: T, _ body: (_Packer) throws -> R) throws -> R {
        entries.removeAll()
        inCall = true
        defer {
            inCall = false
            keyedContainers.endCall()
        }

        ownBuffers = 0
        if hasDeferredError { deferredError = nil }
        current = 0
        let root = push(parent: 0, offset: nil, kind: .single, path: .root)
        try encodeValue(value, into: root, path: .root)
        if hasDeferredError, let deferredError { throw deferredError }
        let bytes = buffer(root)
        guard !bytes.failed else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "Out of memory."))
        }
        return try body(bytes)
    }

    /// Bytes held by the buffers, so that a cached encoder does not keep a large message's memory.
    var retainedCapacity: Int { buffers.reduce(scratch.capacity) { $0 + $1.capacity } }

    /// Writes one element of container `index`, whose key (if any) the caller wrote
    /// after `mark`, and counts it. If encoding the value throws, the container is
    /// left as it was at `mark`, so an `encode(to:)` that catches the error and goes
    /// on still writes valid bytes.
    func encodeElement<T: Encodable>(
        _ value: T, into index: Int, mark: Int, path: @autoclosure () -> _CodingPathNode
    ) throws {
        entries[index].count += 1
        do {
            try encodeValue(value, into: index, path: path())
        } catch {
            buffer(index).truncate(to: mark)
            entries[index].count -= 1
            throw error
        }
    }

    /// Writes one value into the buffer of entry `parent`. The caller counts it.
    func encodeValue<T: Encodable>(_ value: T, into parent: Int, path: @autoclosure () -> _CodingPathNode) throws {
        let out = buffer(parent)
        // Types MessagePack has a format for, checked by metatype (no dynamic cast).
        if T.self == Int.self { out.packInt(Int64(_cast(value, Int.self))); return }
        if T.self == String.self { out.packString(_cast(value, String.self)); return }
        if T.self == Double.self { out.packDouble(_cast(value, Double.self)); return }
        if T.self == Bool.self { out.packBool(_cast(value, Bool.self)); return }
        if T.self == Date.self { try encodeDate(_cast(value, Date.self), into: out, path: path()); return }
        if T.self == Data.self {
            // One access to the Data (each copy of one is a retain and a release).
            let tooLong: Int? = _cast(value, Data.self).withUnsafeBytes { bytes in
                guard bytes.count <= Int(UInt32.max) else { return bytes.count }
                out.packBinary(bytes)
                return nil
            }
            if let tooLong { try _checkLengthUntyped(tooLong, of: value, codingPath: path().path) }
            return
        }
        if T.self == [UInt8].self {
            let bytes = _cast(value, [UInt8].self)
            try _checkLengthUntyped(bytes.count, of: bytes, codingPath: path().path)
            bytes.withUnsafeBytes { out.packBinary($0) }
            return
        }
        if T.self == [Int].self { try _cast(value, [Int].self).encodeSpecially(into: self, parent: parent, path: path()); return }
        if T.self == [String].self { try _cast(value, [String].self).encodeSpecially(into: self, parent: parent, path: path()); return }
        if T.self == [Double].self { try _cast(value, [Double].self).encodeSpecially(into: self, parent: parent, path: path()); return }
        // Other scalars, Foundation types, optionals, arrays and dictionaries: found by
        // one dynamic cast per type, then remembered (a cast costs more than the rest
        // of a small struct's encoding).
        let kind = types.kind(of: T.self) { T.self as? any _MessagePackEncodeSpecially.Type }
        if case .special(let special) = kind {
            func encode<S: _MessagePackEncodeSpecially>(_: S.Type) throws {
                assert(S.self == T.self)  // remembered for T's identity: T itself
                try _cast(value, S.self).encodeSpecially(into: self, parent: parent, path: path())
            }
            return try encode(special)
        }
        // Anything else encodes itself into an entry of its own.
        let index = push(parent: parent, offset: nil, kind: .slot, path: path())
        let saved = current
        current = index
        defer { current = saved }
        do {
            try value.encode(to: self)
        } catch {
            // Leave the stack as it was for the caller; the error carries on.
            abandon(downTo: index)
            throw error
        }
        if hasDeferredError, let deferredError { throw deferredError }
        try finish(downTo: index)
    }

    func encodeDate(_ date: Date, into out: _Packer, path: @autoclosure () -> _CodingPathNode) throws {
        switch dateStrategy {
        case .timestamp:
            // Split in the reference epoch first: fewer roundings than via 1970.
            let interval = date.timeIntervalSinceReferenceDate
            guard interval.isFinite, abs(interval) < 9e18 else {
                throw EncodingError.invalidValue(date, .init(
                    codingPath: path().path, debugDescription: "\(date) is outside the range of a MessagePack timestamp."))
            }
            var seconds = interval.rounded(.down)
            var nanoseconds = ((interval - seconds) * 1e9).rounded()
            if nanoseconds >= 1e9 { seconds += 1; nanoseconds = 0 }
            out.packTimestamp(
                seconds: Int64(seconds) + 978_307_200,
                nanoseconds: UInt32(nanoseconds))
        case .secondsSince1970:
            out.packDouble(date.timeIntervalSince1970)
        case .millisecondsSince1970:
            out.packDouble(date.timeIntervalSince1970 * 1000)
        }
    }

    /// Writes a key (string or integer, per the options) into an entry's buffer.
    @inline(__always) func encodeKey(_ key: some CodingKey, into out: _Packer) {
        if integerKeys, let int = key.intValue {
            out.packInt(Int64(int))
        } else {
            out.packString(key.stringValue)
        }
    }
}

/// `value` as `U`, when the caller has checked that `T` is `U`.
@inline(__always) func _cast<T, U>(_ value: T, _: U.Type) -> U {
    unsafeBitCast(value, to: U.self)
}

/// One thread at a time uses an encoder: it passes between threads only through
/// `MessagePackEncoder`'s spare slot, behind its mutex, and keeps nothing of the
/// values it encoded once a call is over (only emptied buffers).
extension _MessagePackEncoder: @unchecked Sendable {}
