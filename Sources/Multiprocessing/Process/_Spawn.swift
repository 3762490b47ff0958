import SystemPackage

/// Starts `path` with `arguments`, the environment of this process, and the
/// descriptors `handing` (source, number in the child); all others are closed in
/// the child, which starts as a new program would: no signal blocked, every
/// signal's action the default. (posix_spawn would pass on this thread's mask and
/// the signals this process ignores, such as SIGPIPE; then SIGTERM could not end it.)
func _spawn(path: String, arguments: [String], handing descriptors: [(FileDescriptor, CInt)]) throws(Errno) -> CInt {
    // Copy every source above every target first, so no dup2 overwrites a source
    // another dup2 still needs.
    let firstFree = (descriptors.map(\.1).max() ?? 2) + 1
    var high: [FileDescriptor] = []
    defer { high.forEach(_close) }
    for (source, _) in descriptors {
        high.append(try _duplicate(source, atLeast: max(firstFree, 64)))
    }
    // What this process printed so far comes out before what the child prints
    // (stdout is block-buffered when it is a pipe or a file).
    _flushStandardStreams()
    let pairs = zip(high, descriptors).map { (source: $0.rawValue, target: $1.1) }
    return try _posixSpawn(path: path, arguments: arguments, copying: pairs, closeFrom: firstFree)
}
