import SystemPackage

/// Writes a line to standard error (descriptor 2), unbuffered.
func _writeStandardError(_ line: String) {
    try? _writeFully(FileDescriptor(rawValue: 2), Array((line + "\n").utf8))
}

