import Glibc
import MessagePack
import SystemPackage

extension ChildProcess {
    /// A function a child process can run, registered by name, with a typed
    /// argument: any `Codable` value, including connections and queues.
    public struct Entry<Argument: Codable & Sendable>: ChildProcessEntry {
        /// The name the parent passes the child to say which entry to run.
        public let name: String
        let body: @Sendable (Argument) throws -> Void

        /// An entry that runs `body` in a child started for `name`.
        /// - Parameters:
        ///   - name: How the parent names the entry to the child; unique in a program.
        ///   - body: What the child does with its argument. An error it throws goes
        ///     to the child's stderr and makes it exit with code 1.
        public init(_ name: String, _ body: @escaping @Sendable (Argument) throws -> Void) {
            self.name = name
            self.body = body
        }

        public func _run(argument bytes: [UInt8], handles: _HandleTable) throws {
            let decoder = MessagePackDecoder()
            decoder.userInfo[_HandleTable.key] = handles
            try body(decoder.decode(Argument.self, from: bytes))
        }
    }

    /// The argument that marks a process as a child started by `ChildProcess`.
    static let childFlag = "--swift-multiprocessing-child"
    /// The descriptor a child reads its argument from; its handles follow.
    static let argumentDescriptor: CInt = 3

    /// Runs the entry this process was started for, then exits, when this process
    /// is a child that `ChildProcess.start` made; otherwise returns at once.
    /// Call it first thing in `main` (Python's `if __name__ == "__main__"` guard).
    ///
    /// In a child, this never returns: it exits with code 0 after the entry, or
    /// writes the entry's error to stderr and exits with code 1 (2 if no entry has
    /// the name the parent asked for, or the argument cannot be read).
    public static func bootstrap(_ entries: [any ChildProcessEntry]) throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 4, arguments[1] == childFlag else { return }
        let name = arguments[2]
        let program = arguments[0].split(separator: "/").last.map(String.init) ?? "child"
        let isPoolWorker = name == ProcessPool.workerEntryName
        let entry = entries.first(where: { $0.name == name })
        guard isPoolWorker || entry != nil else {
            fail("\(program): no child process entry is named '\(name)' (entries: \(entries.map(\.name)))", code: 2)
        }
        guard let count = Int(arguments[3]), count >= 0, count < 4096 else {
            fail("\(program): invalid handle count '\(arguments[3])'", code: 2)
        }
        let argumentFile = FileDescriptor(rawValue: argumentDescriptor)
        let bytes: [UInt8]
        do {
            bytes = try _readToEnd(argumentFile)
            _close(argumentFile)
        } catch {
            fail("\(program): cannot read the argument of '\(name)': \(error)", code: 2)
        }
        let handles = _HandleTable(childDescriptors: (0..<count).map { argumentDescriptor + 1 + CInt($0) })
        if isPoolWorker {
            // A pool's worker: it runs the pool tasks among `entries`, until the pool lets it go.
            let decoder = MessagePackDecoder()
            decoder.userInfo[_HandleTable.key] = handles
            guard let start = try? decoder.decode(ProcessPool.WorkerStart.self, from: bytes) else {
                fail("\(program): cannot read the argument of a pool worker", code: 2)
            }
            ProcessPool.runWorker(start, tasks: entries)
        }
        do {
            try entry?._run(argument: bytes, handles: handles)
        } catch {
            fail("\(program): child process entry '\(name)' failed: \(error)", code: 1)
        }
        _exit(code: 0)
    }

    private static func fail(_ message: String, code: CInt) -> Never {
        _writeStandardError(message)
        _exit(code: code)
    }
}

/// What `ChildProcess.bootstrap` runs: an `Entry` of any argument type.
public protocol ChildProcessEntry: Sendable {
    /// The entry's name.
    var name: String { get }
    /// Decodes the argument and runs the entry (called by `bootstrap`).
    func _run(argument: [UInt8], handles: _HandleTable) throws
}
