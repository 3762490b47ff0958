/// Checks MessagePack bytes against ``MessagePackLimits`` before msgpack-c sees them.
///
/// msgpack-c's unpacker allocates an array's or a map's storage from the count in
/// its header, before the elements arrive: five bytes claiming 2^32 elements would
/// ask for 96 GiB. It also stops at 32 nested containers. So the decoder walks the
/// value's headers first — no values are built here — and hands msgpack-c only
/// bytes whose every count and length is backed by the bytes that follow.
struct _Scanner {
    enum Result {
        /// A whole value spans the first `length` bytes.
        case complete(length: Int)
        /// The bytes end inside a value (a stream needs more).
        case incomplete(Shortfall)
    }

    /// Where the bytes ran out, as a truncation error says it. A stream meets this
    /// on every piece of a value, so the text is only made when an error needs it.
    enum Shortfall {
        case valueStart(offset: Int)
        case lengthField(offset: Int)
        case bytes(offset: Int, missing: Int)
        case container(isMap: Bool, elements: Int, available: Int)

        var description: String {
            switch self {
            case .valueStart(let offset):
                return "the input ends at offset \(offset), where a value should begin"
            case .lengthField(let offset):
                return "the input ends inside the length of the value at offset \(offset)"
            case .bytes(let offset, let missing):
                return "the value at offset \(offset) needs \(missing) more bytes"
            case .container(let isMap, let elements, let available):
                return "\(isMap ? "a map" : "an array") of \(elements) elements has only \(available) \(available == 1 ? "byte" : "bytes") after its header"
            }
        }
    }

    let limits: MessagePackLimits

    /// Where a scan stopped inside a value that had not all arrived, so that a stream
    /// goes on from there when more bytes come: from the start of the value it was
    /// in, with the counts of the containers open around it. Scanning from the start
    /// again each time would cost time quadratic in a value's length.
    struct Progress {
        /// Where the value being scanned begins, from the start of the bytes.
        var position = 0
        /// How many containers are open around it, and their items still to come.
        var depth = 0
        var open: [Int] = []
        /// The limits the counts were checked against: other limits start again.
        var limits: MessagePackLimits?
    }

    /// Scans the first value of `bytes`.
    /// - Throws: `DecodingError.dataCorrupted` for a length over a limit, a reserved
    ///   byte, or nesting deeper than `limits.maxDepth`. A count that the remaining
    ///   bytes cannot hold is `.incomplete`, which a one-shot decode reports as truncation.
    func scan(_ bytes: UnsafeRawBufferPointer) throws(DecodingError) -> Result {
        let maxDepth = max(0, min(limits.maxDepth, MessagePackLimits.unpackerStackSize))
        // Items still to come in each open container (a map's pairs count twice): a
        // stack of at most `maxDepth` counts, on the stack (this loop is hot).
        let result: Result
        do {
            result = try withUnsafeTemporaryAllocation(of: Int.self, capacity: maxDepth + 1) { open in
                var position = 0
                var depth = 0
                return try scan(bytes, maxDepth: maxDepth, open: open.baseAddress!, position: &position, depth: &depth)
            }
        } catch let error as DecodingError {
            throw error
        } catch {
            throw corrupted("\(error)")  // unreachable: scan throws only DecodingError
        }
        return result
    }

    /// Scans the first value of `bytes` from where `progress` says an earlier scan of
    /// the same (shorter) bytes stopped, and records where this one stops. A complete
    /// value resets `progress` for the next.
    func scan(_ bytes: UnsafeRawBufferPointer, resuming progress: inout Progress) throws(DecodingError) -> Result {
        let maxDepth = max(0, min(limits.maxDepth, MessagePackLimits.unpackerStackSize))
        if progress.limits != limits || progress.open.count != maxDepth + 1 {
            progress = Progress(open: [Int](repeating: 0, count: maxDepth + 1), limits: limits)
        }
        var position = progress.position
        var depth = progress.depth
        let result: Result
        do {
            result = try progress.open.withUnsafeMutableBufferPointer { open throws(DecodingError) in
                try scan(bytes, maxDepth: maxDepth, open: open.baseAddress!, position: &position, depth: &depth)
            }
        } catch {
            // The counts were changed on the way to the error: a later call starts over
            // (and meets the same error), never from counts that no position matches.
            progress = Progress()
            throw error
        }
        if case .complete = result {
            (progress.position, progress.depth) = (0, 0)
        } else {
            (progress.position, progress.depth) = (position, depth)
        }
        return result
    }

    /// The scan itself. On `.incomplete`, `position` and `depth` say where the value
    /// that had not all arrived begins, and `open` holds the containers around it.
    private func scan(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int, open: UnsafeMutablePointer<Int>,
        position: inout Int, depth: inout Int
    ) throws(DecodingError) -> Result {
        let end = bytes.count
        var pos = position
        // Where the value being scanned begins: where a later scan resumes.
        var resume = pos
        defer { position = resume }

        @inline(__always) func byte(_ at: Int) -> Int { Int(bytes[at]) }
        @inline(__always) func bigEndian(_ at: Int, _ width: Int) -> Int {
            var value = 0
            for i in 0..<width { value = value << 8 | byte(at + i) }
            return value
        }

        while true {
            resume = pos
            guard pos < end else { return .incomplete(.valueStart(offset: pos)) }
            let lead = byte(pos)
            let start = pos
            var containerItems = -1  // >= 0 when this value opens a container
            var isMap = false

            switch lead {
            case 0x00...0x7f, 0xe0...0xff, 0xc0, 0xc2, 0xc3:
                pos += 1
            case 0xc1:
                throw corrupted("byte 0xc1 at offset \(pos) is never used in MessagePack")
            case 0xcc, 0xd0: pos += 2
            case 0xcd, 0xd1: pos += 3
            case 0xca, 0xce, 0xd2: pos += 5
            case 0xcb, 0xcf, 0xd3: pos += 9
            case 0xa0...0xbf, 0xd9, 0xda, 0xdb:
                guard let (header, length) = lengthField(lead: lead, fix: lead & 0x1f, base: 0xd9, at: pos) else {
                    return .incomplete(.lengthField(offset: start))
                }
                guard length <= limits.maxStringLength else {
                    throw corrupted("a string of \(length) bytes at offset \(pos) is over the limit of \(limits.maxStringLength)")
                }
                pos += header + length
            case 0xc4, 0xc5, 0xc6:
                guard let (header, length) = lengthField(lead: lead, fix: nil, base: 0xc4, at: pos) else {
                    return .incomplete(.lengthField(offset: start))
                }
                guard length <= limits.maxBinaryLength else {
                    throw corrupted("a binary of \(length) bytes at offset \(pos) is over the limit of \(limits.maxBinaryLength)")
                }
                pos += header + length
            case 0xd4...0xd8:
                pos += 2 + (1 << (lead - 0xd4))
            case 0xc7, 0xc8, 0xc9:
                guard let (header, length) = lengthField(lead: lead, fix: nil, base: 0xc7, at: pos) else {
                    return .incomplete(.lengthField(offset: start))
                }
                guard length <= limits.maxBinaryLength else {
                    throw corrupted("an extension of \(length) bytes at offset \(pos) is over the limit of \(limits.maxBinaryLength)")
                }
                pos += header + 1 + length
            case 0x90...0x9f, 0xdc, 0xdd:
                guard let (header, count) = lengthField(lead: lead, fix: lead & 0x0f, base: 0xdc - 1, at: pos) else {
                    return .incomplete(.lengthField(offset: start))
                }
                pos += header
                containerItems = count
            case 0x80...0x8f, 0xde, 0xdf:
                guard let (header, count) = lengthField(lead: lead, fix: lead & 0x0f, base: 0xde - 1, at: pos) else {
                    return .incomplete(.lengthField(offset: start))
                }
                pos += header
                containerItems = count * 2
                isMap = true
            default:
                throw corrupted("byte \(lead) at offset \(pos) is not MessagePack")  // unreachable: every byte is covered above
            }
            guard pos <= end else {
                return .incomplete(.bytes(offset: start, missing: pos - end))
            }

            if containerItems >= 0 {
                let elements = isMap ? containerItems / 2 : containerItems
                let kind = isMap ? "a map" : "an array"
                guard elements <= limits.maxContainerLength else {
                    throw corrupted("\(kind) of \(elements) elements is over the limit of \(limits.maxContainerLength)")
                }
                guard depth < maxDepth else {
                    throw corrupted("containers nested deeper than \(maxDepth) levels (at offset \(pos))")
                }
                // Every item takes at least one byte: a count the rest of the input
                // cannot hold is refused here, before anything is allocated for it.
                guard containerItems <= end - pos else {
                    return .incomplete(.container(isMap: isMap, elements: elements, available: end - pos))
                }
                if containerItems > 0 {
                    open[depth] = containerItems
                    depth += 1
                    continue
                }
            }
            // A value is complete: it fills one item of each container it closes.
            while depth > 0 {
                open[depth - 1] -= 1
                if open[depth - 1] > 0 { break }
                depth -= 1
            }
            if depth == 0 { return .complete(length: pos) }
        }

        /// The header size and the length/count for a str/bin/ext/array/map lead byte.
        /// `fix` is the length held in a fix-format lead byte; `base` is the lead byte
        /// of the 8-bit form (for array/map, one below the 16-bit form, which has no 8-bit form).
        /// `nil` when the input ends inside the length field.
        func lengthField(lead: Int, fix: Int?, base: Int, at start: Int) -> (header: Int, length: Int)? {
            if let fix, lead < 0xc0 { return (1, fix) }
            let width = 1 << (lead - base)  // 1, 2 or 4 bytes of length
            guard start + 1 + width <= end else { return nil }
            return (1 + width, bigEndian(start + 1, width))
        }
    }

    func corrupted(_ message: String) -> DecodingError {
        DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "Invalid MessagePack: \(message)."))
    }

    static func truncated(_ what: String) -> DecodingError {
        DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "Truncated MessagePack: \(what)."))
    }

    /// Scans a whole input that must hold exactly one value.
    /// - Throws: `DecodingError.dataCorrupted` for invalid or truncated bytes, a limit
    ///   exceeded, or bytes left over after the value.
    func scanWhole(_ bytes: UnsafeRawBufferPointer) throws(DecodingError) {
        guard bytes.count <= limits.maxInputLength else {
            throw corrupted("an input of \(bytes.count) bytes is over the limit of \(limits.maxInputLength)")
        }
        switch try scan(bytes) {
        case .incomplete(let shortfall):
            throw Self.truncated(shortfall.description)
        case .complete(let length) where length < bytes.count:
            let extra = bytes.count - length
            throw corrupted("\(extra) \(extra == 1 ? "byte follows" : "bytes follow") the value, which ends at offset \(length)")
        case .complete:
            return
        }
    }
}
