#ifndef SWIFT_MULTIPROCESSING_CMSGPACKBENCH_SHIM_H
#define SWIFT_MULTIPROCESSING_CMSGPACKBENCH_SHIM_H
// msgpack-c 4.x (Debian's libmsgpack-dev), for the hand-written floor in codec-bench.
#include <msgpack.h>
#endif
