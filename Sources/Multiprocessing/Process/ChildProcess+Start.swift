import Glibc
import MessagePack
import SystemPackage

extension ChildProcess {
    /// Starts a child process running `entry` with `argument`. Python's
    /// `Process(target=, args=).start()`.
    ///
    /// The child is this executable again; its `main` must call `bootstrap` with
    /// the entry. The argument is MessagePack-encoded; the connections and queues in
    /// it are handed over as descriptors, and the child's other descriptors (but
    /// stdin, stdout and stderr) are closed.
    /// - Throws: `EncodingError` if the argument cannot be encoded (nothing is
    ///   started then); `Errno` if the process cannot be started.
    public static func start<Argument>(_ entry: Entry<Argument>, _ argument: Argument) throws -> ChildProcess {
        try start(executable: "/proc/self/exe", entry: entry.name, argument: argument)
    }

    /// Starts another Swift executable, whose `main` calls `bootstrap` with an
    /// entry named `entry`, taking `argument` as `start(_:_:)` hands it over.
    public static func start<Argument: Encodable>(
        executable path: String, entry name: String, argument: Argument
    ) throws -> ChildProcess {
        let handles = _HandleTable()
        defer { handles.endHandOver() }
        let encoder = MessagePackEncoder()
        encoder.userInfo[_HandleTable.key] = handles
        let bytes = try encoder.encode(argument)
        let argumentFile = try _memoryFile(named: "swift-multiprocessing-argument", holding: bytes)
        defer { _close(argumentFile) }
        let descriptors = handles.descriptors
        let handing = [(argumentFile, argumentDescriptor)]
            + descriptors.enumerated().map { ($0.element, argumentDescriptor + 1 + CInt($0.offset)) }
        let pid = try _spawn(path: path, arguments: [childFlag, name, String(descriptors.count)], handing: handing)
        return ChildProcess(pid: pid)
    }

    /// Starts any program with `arguments`, handing it `connections` as descriptors
    /// 3, 4, … in order (all others but stdin, stdout and stderr closed). A Python
    /// program reads them as `multiprocessing.connection.Connection(3)`, and so on.
    public static func start(
        executable path: String, arguments: [String] = [], handing connections: [Connection]
    ) throws -> ChildProcess {
        // Each descriptor stays open until the spawn is done, even if closed meanwhile.
        var held: [Connection] = []
        defer { held.forEach { $0.endHandOver() } }
        var handing: [(FileDescriptor, CInt)] = []
        for (offset, connection) in connections.enumerated() {
            do {
                handing.append((try connection.beginHandOver(), CInt(3 + offset)))
            } catch {
                throw ConnectionError(.closed, "connection \(connection.fileDescriptor.rawValue) is closed and cannot be handed to a child")
            }
            held.append(connection)
        }
        return ChildProcess(pid: try _spawn(path: path, arguments: arguments, handing: handing))
    }
}
