import Foundation
import MessagePack

// libFuzzer's own `main` is not linked into an executable that has one, so this
// top-level code hands it the command line (libFuzzer's flags and corpus folders).
//
//     fuzz seed CORPUS FIXTURES    writes seed inputs for every route from Fixtures/
//     fuzz [libFuzzer flags] CORPUS...

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

let arguments = CommandLine.arguments
if arguments.count == 4, arguments[1] == "seed" {
    do {
        let count = try writeSeeds(to: URL(fileURLWithPath: arguments[2]), fixtures: URL(fileURLWithPath: arguments[3]))
        print("wrote \(count) seed inputs to \(arguments[2])")
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("fuzz seed: \(error)\n".utf8))
        exit(1)
    }
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
})
