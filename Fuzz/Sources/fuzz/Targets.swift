import Dispatch
import Foundation
import MessagePack
@_spi(Fuzzing) import Multiprocessing
import SystemPackage

/// The ways bytes come in. An input's first byte picks one; the rest is its payload.
/// Each route checks more than "no crash": what it accepts must survive a round trip,
/// and it may only throw the errors its documentation names.
enum Route: UInt8, CaseIterable {
    // New routes go last: a kept input's first byte must keep picking its route.
    case typed, value, stream, json, connection, queue, pool

    static func of(_ byte: UInt8) -> Route { allCases[Int(byte) % allCases.count] }

    /// The byte that picks this route.
    var selector: UInt8 { rawValue }
}

/// Fails the run: libFuzzer keeps the input that got here.
func finding(_ message: String) -> Never {
    let shown = message.count > 2000 ? message.prefix(2000) + "… (\(message.count) characters)" : message[...]
    FileHandle.standardError.write(Data("FUZZ FINDING: \(shown)\n".utf8))
    abort()
}

func run(_ input: [UInt8]) {
    guard let first = input.first else { return }
    let payload = Array(input.dropFirst())
    switch Route.of(first) {
    case .typed: typed(payload)
    case .value: value(payload)
    case .stream: stream(payload)
    case .json: json(payload)
    case .connection: connection(payload)
    case .queue: queue(payload)
    case .pool: pool(payload)
    }
}

// MARK: Typed decoding

/// One decodable type and how to compare two of its values.
struct TypedCase: Sendable {
    let name: String
    /// Decodes, re-encodes and checks the round trip; throws only what decoding threw.
    let run: @Sendable (_ bytes: [UInt8], _ decoder: MessagePackDecoder, _ encoder: MessagePackEncoder) throws -> Void

    /// Round trip: what was decoded encodes, decodes again and encodes to the same bytes.
    /// (Bytes, not `==`: a NaN is not equal to itself.)
    init<T: Codable & SendableMetatype>(_: T.Type) {
        name = "\(T.self)"
        run = { bytes, decoder, encoder in
            let value = try decoder.decode(T.self, from: bytes)
            let first: [UInt8]
            do {
                first = try encoder.encode(value)
            } catch EncodingError.invalidValue(_, let context)
                where context.debugDescription.contains("outside the range of a MessagePack timestamp") {
                return  // a date decoded from a number or timestamp beyond what a Double can say
            } catch {
                finding("encoding a decoded \(T.self) threw \(type(of: error)): \(error)")
            }
            let again: T
            do {
                again = try decoder.decode(T.self, from: first)
            } catch {
                finding("the encoder's bytes for a decoded \(T.self) do not decode: \(error)\nbytes: \(hex(first))")
            }
            let second: [UInt8]
            do {
                second = try encoder.encode(again)
            } catch {
                finding("a \(T.self) decoded from the encoder's bytes does not encode: \(error)")
            }
            if first != second {
                finding("\(T.self) does not round-trip:\n first:  \(hex(first))\n second: \(hex(second))")
            }
        }
    }
}

let typedCases: [TypedCase] = [
    TypedCase(Scalars.self), TypedCase(FoundationTypes.self), TypedCase(Dates.self),
    TypedCase(Collections.self), TypedCase(Shape.self), TypedCase(IntKeyed.self),
    TypedCase(Manual.self), TypedCase(Dog.self), TypedCase(Tree.self), TypedCase(Item.self),
    TypedCase([Shape].self), TypedCase([Int: Dog].self), TypedCase(MessagePackValue.self),
    TypedCase(Scalars?.self), TypedCase(Date.self), TypedCase(Decimal.self),
]

let dateStrategies: [(MessagePackDecoder.DateDecodingStrategy, MessagePackEncoder.DateEncodingStrategy)] = [
    (.timestamp, .timestamp), (.secondsSince1970, .secondsSince1970), (.millisecondsSince1970, .millisecondsSince1970),
    (.timestamp, .timestamp),
]

/// Coders for a date strategy, new for each input, so that a finding does not depend
/// on what earlier inputs taught a cached decoder (each decode still reuses its
/// decoder within the input: the round trip decodes twice).
func coders(_ pick: Int) -> (MessagePackDecoder, MessagePackEncoder) {
    let decoder = MessagePackDecoder()
    decoder.dateDecodingStrategy = dateStrategies[pick].0
    let encoder = MessagePackEncoder()
    encoder.dateEncodingStrategy = dateStrategies[pick].1
    encoder.sortsDictionaryKeys = true  // the round trip compares bytes
    return (decoder, encoder)
}

/// Payload: a byte picking the type (low 4 bits) and the date strategy (next 2), then MessagePack.
func typed(_ payload: [UInt8]) {
    guard let pick = payload.first else { return }
    let bytes = Array(payload.dropFirst())
    let typedCase = typedCases[Int(pick & 0x0f) % typedCases.count]
    let (decoder, encoder) = coders(Int(pick >> 4) & 3)
    do {
        try typedCase.run(bytes, decoder, encoder)
    } catch is DecodingError {
        // The documented outcome for bytes that are not a `T`.
    } catch {
        finding("decoding \(typedCase.name) threw \(type(of: error)), not DecodingError: \(error)")
    }
}

// MARK: MessagePackValue

/// Any MessagePack parses to a value that writes back to bytes that parse to it again,
/// and whose tagged JSON parses back to it too.
func value(_ payload: [UInt8]) {
    let parsed: MessagePackValue
    do {
        parsed = try MessagePackValue(bytes: payload)
    } catch is DecodingError {
        return
    } catch {
        finding("MessagePackValue(bytes:) threw \(type(of: error)): \(error)")
    }
    checkRoundTrips(parsed, from: "bytes \(hex(payload))")
}

func checkRoundTrips(_ value: MessagePackValue, from origin: String) {
    do {
        let bytes = try value.bytes()
        let back = try MessagePackValue(bytes: bytes)
        if back != value { finding("\(value) from \(origin) writes bytes \(hex(bytes)) that parse to \(back)") }
    } catch {
        finding("\(value) from \(origin) does not round-trip through bytes: \(error)")
    }
    let text = value.json()
    do {
        let back = try MessagePackValue(json: text)
        if back != value { finding("\(value) from \(origin) writes JSON \(text) that parses to \(back)") }
    } catch {
        finding("the tagged JSON \(text) of \(value) from \(origin) does not parse: \(error)")
    }
}

// MARK: Stream decoder

/// Payload: a byte giving the piece size (1 to 256), a byte choosing the limits, then
/// a stream of MessagePack. Fed in pieces, the decoder must give exactly what it gives
/// fed all at once; after an error, the next call must throw again (the stream cannot
/// go past bytes it refused).
func stream(_ payload: [UInt8]) {
    guard payload.count >= 2 else { return }
    let pieceSize = Int(payload[0]) + 1
    var limits = MessagePackLimits()
    let limitByte = payload[1]
    if limitByte & 0x80 != 0 {
        limits.maxDepth = Int(limitByte & 0x3f) - 2  // -2 ... 61, past the unpacker's 32
        limits.maxContainerLength = Int(limitByte & 0x07) * 3
        limits.maxStringLength = Int(limitByte & 0x0f) * 5
        limits.maxBinaryLength = Int(limitByte & 0x1f) * 2
        limits.maxInputLength = Int(limitByte & 0x3f) * 40
    }
    let bytes = Array(payload.dropFirst(2))

    enum Outcome: Equatable {
        case value(MessagePackValue)
        /// A whole value's bytes that do not parse under the limits: consumed, the stream goes on.
        case refusedValue
        case error
        case left(Int)
    }

    func outcomes(pieces: Int) -> [Outcome] {
        var decoder = MessagePackStreamDecoder(limits: limits)
        var results: [Outcome] = []
        var offset = 0
        while offset < bytes.count {
            decoder.append(bytes[offset..<min(bytes.count, offset + pieces)])
            offset += pieces
            do {
                while let value = try decoder.nextBytes() {
                    do {
                        results.append(.value(try MessagePackValue(bytes: value, limits: limits)))
                    } catch is DecodingError {
                        results.append(.refusedValue)
                    }
                }
            } catch is DecodingError {
                results.append(.error)
                do {
                    let again = try decoder.nextBytes()
                    finding("after an error the stream decoder gave \(again.map(hex) ?? "nil"), not the error again, for \(hex(bytes))")
                } catch is DecodingError {
                    return results
                } catch {
                    finding("the stream decoder threw \(type(of: error)): \(error)")
                }
            } catch {
                finding("the stream decoder threw \(type(of: error)): \(error)")
            }
        }
        results.append(.left(decoder.bufferedByteCount))
        return results
    }

    let whole = outcomes(pieces: max(1, bytes.count))
    let pieces = outcomes(pieces: pieceSize)
    if whole != pieces {
        finding("the stream decoder gives \(pieces) in pieces of \(pieceSize) but \(whole) all at once, for \(hex(bytes))")
    }
}

// MARK: Tagged JSON

/// Payload: JSON text. What parses writes back to JSON and MessagePack that parse to it.
func json(_ payload: [UInt8]) {
    let parsed: MessagePackValue
    do {
        parsed = try MessagePackValue(json: payload)
    } catch is MessagePackJSONError {
        return
    } catch {
        finding("MessagePackValue(json:) threw \(type(of: error)): \(error)")
    }
    checkRoundTrips(parsed, from: "JSON \(String(decoding: payload, as: UTF8.self))")
}

// MARK: Connection

/// Payload: a byte choosing the frame limit, a byte choosing how many times the rest
/// is sent (1 to 16, so frames reach past the reader's first 64 KiB) and whether the
/// receiver reads ahead (as a pool's connections do), then bytes as a peer sends them. The receiver gets frames, then end of file or a refused frame;
/// never another error, and never memory for a length it was only told.
func connection(_ payload: [UInt8]) {
    guard payload.count >= 2 else { return }
    let limitByte = payload[0]
    let repeats = Int(payload[1] & 0x0f) + 1
    let bytes = Array(payload.dropFirst(2))
    let pair: (Connection, Connection)
    do {
        pair = try Connection.pipe()
    } catch {
        finding("Connection.pipe failed: \(error)")
    }
    let (receiver, sender) = pair
    receiver.maxFrameLength = limitByte & 1 == 0 ? Connection.defaultMaxFrameLength : Int(limitByte) << 12
    if payload[1] & 0x10 != 0 { receiver.enableReadAhead() }
    // The peer writes from a thread of its own: more than a socket's buffer may be sent.
    let written = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        let fd = sender.fileDescriptor.rawValue
        bytes.withUnsafeBytes { raw in
            sending: for _ in 0..<repeats {
                var done = 0
                while done < raw.count {
                    let n = write(fd, raw.baseAddress! + done, raw.count - done)
                    if n <= 0 { break sending }  // the reader stopped and closed its end
                    done += n
                }
            }
        }
        sender.close()
        written.signal()
    }
    var frames = 0
    while frames < 1000 {
        do {
            _ = try receiver.receive(MessagePackValue.self)
            frames += 1
        } catch let ended as ConnectionError where [.endOfFile, .frameTooLong, .invalidFrame].contains(ended.code) {
            // The documented ends; the connection stays refused after one.
            do {
                _ = try receiver.receiveBytes()
                finding("a connection read on after \(ended)")
            } catch {
                if error.code != ended.code && error.code != .endOfFile {
                    finding("after \(ended), Connection.receiveBytes threw \(error)")
                }
            }
            break
        } catch is DecodingError {
            frames += 1  // a whole frame that is not MessagePack: consumed, the next one follows
        } catch {
            finding("Connection.receive threw \(type(of: error)): \(error)")
        }
    }
    receiver.close()
    written.wait()
}

// MARK: Queue

/// Payload: bytes written over the start of a queue's ring in shared memory, as
/// another process could, after one item was put there. `get` returns an item or
/// throws a `QueueError` or `DecodingError`, never reads past the ring, never
/// allocates what a record claims, never hangs.
func queue(_ payload: [UInt8]) {
    let queue: Queue<MessagePackValue>
    let before = queueSegments()
    do {
        queue = try Queue(bufferSize: 64 << 10)
        try queue.put(.binary([UInt8](repeating: 0, count: max(0, min(payload.count, 60_000) - 16))))
    } catch {
        finding("making a queue failed: \(error)")
    }
    defer { queue.close() }
    guard let fd = queueSegments().subtracting(before).first else { finding("the queue's memfd was not found") }
    var status = stat()
    guard fstat(fd, &status) == 0 else { finding("fstat of the queue's memfd failed") }
    let size = Int(status.st_size)
    guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
        finding("mmap of the queue's memfd failed")
    }
    defer { munmap(base, size) }
    let ring = UnsafeMutableRawBufferPointer(start: base + (size - queue.bufferSize), count: queue.bufferSize)
    for (offset, byte) in payload.prefix(ring.count).enumerated() { ring[offset] = byte }
    queue.maxFrameLength = 1 << 20
    for _ in 0..<4 {
        do {
            _ = try queue.getNowait()
        } catch let error as QueueError {
            if error.code == .empty { break }
        } catch is DecodingError {
            continue
        } catch {
            finding("Queue.get threw \(type(of: error)): \(error)")
        }
    }
}

/// The queue memfd descriptors open in this process.
func queueSegments() -> Set<Int32> {
    var found = Set<Int32>()
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return found }
    for name in names {
        guard let fd = Int32(name),
              let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
              target.contains("memfd:swift-multiprocessing-queue") else { continue }
        found.insert(fd)
    }
    return found
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

// MARK: The pool's worker protocol

/// Payload: a frame from a worker (a reply) or from the pool (a request), read as
/// each. What reads makes a frame that reads back to the same frame; a reply is also
/// taken as the pool takes it, for one input and for chunks, its outputs decoded.
func pool(_ payload: [UInt8]) {
    _ = _interpretPoolReply(payload)
    let (request, reply) = _readPoolFrames(payload)
    for (what, made) in [("request", request), ("reply", reply)] {
        guard let made else { continue }
        let again = _readPoolFrames(made)
        let remade = what == "request" ? again.request : again.reply
        if remade != made {
            finding("a pool \(what) read from \(hex(payload)) made \(hex(made)), which reads back as \(remade.map(hex) ?? "no frame")")
        }
    }
}
