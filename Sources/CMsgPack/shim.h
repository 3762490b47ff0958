#ifndef SWIFT_MULTIPROCESSING_CMSGPACK_SHIM_H
#define SWIFT_MULTIPROCESSING_CMSGPACK_SHIM_H
// msgpack-c 4.x (Debian's libmsgpack-dev). Its packing functions are static
// inline in the headers, so Swift inlines them as C would.
#include <msgpack.h>
#endif
