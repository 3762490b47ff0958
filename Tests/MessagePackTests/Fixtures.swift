import Foundation
import MessagePack

/// A test vector from Fixtures/messagepack.
struct Fixture: Sendable, CustomStringConvertible {
    let file: String
    let type: String
    let bytes: [UInt8]
    let value: MessagePackValue
    /// The "json" field as JSON text, for Foundation's JSONDecoder.
    let json: String?
    let options: FixtureOptions

    var description: String { file }

    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/messagepack")

    /// Every vector in the folder (a new file is a new test case), and the files
    /// that could not be read as vectors.
    static let loaded: (fixtures: [Fixture], problems: [String]) = {
        var fixtures: [Fixture] = []
        var problems: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names.filter({ $0.hasSuffix(".json") }).sorted() {
            do {
                let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
                let file = try MessagePackValue(json: text)
                guard case .string(let type)? = file["type"], case .string(let hexBytes)? = file["msgpack"],
                      let value = file["value"] else {
                    problems.append("\(name): no type, msgpack or value")
                    continue
                }
                fixtures.append(Fixture(
                    file: name, type: type, bytes: hexDecoded(hexBytes), value: value,
                    json: file["json"].map { $0.json() }, options: try FixtureOptions(file["options"])))
            } catch {
                problems.append("\(name): \(error)")
            }
        }
        return (fixtures, problems)
    }()

    static var all: [Fixture] { loaded.fixtures }
}
