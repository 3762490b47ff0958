#ifndef SWIFT_MULTIPROCESSING_CMSGPACK_SHIM_H
#define SWIFT_MULTIPROCESSING_CMSGPACK_SHIM_H
// msgpack-c 4.x (Debian's libmsgpack-dev). Its packing functions are static
// inline in the headers, so Swift inlines them as C would.
#include <msgpack.h>
#include <string.h>

// msgpack_sbuffer_write with its common case inline. msgpack-c's packer hands
// its write callback 1 to 9 bytes at a time (a header, a number), and for those a
// call to memcpy costs more than the copy: fixed sizes compile to plain moves.
// Anything else, and growing the buffer, is msgpack_sbuffer_write's.
static inline int swiftmp_sbuffer_write(void *data, const char *buf, size_t len) {
    msgpack_sbuffer *sbuf = (msgpack_sbuffer *)data;
    if (sbuf->alloc - sbuf->size >= len) {
        char *out = sbuf->data + sbuf->size;
        switch (len) {
        case 1: out[0] = buf[0]; break;
        case 2: memcpy(out, buf, 2); break;
        case 3: memcpy(out, buf, 3); break;
        case 5: memcpy(out, buf, 5); break;
        case 9: memcpy(out, buf, 9); break;
        default: return msgpack_sbuffer_write(data, buf, len);
        }
        sbuf->size += len;
        return 0;
    }
    return msgpack_sbuffer_write(data, buf, len);
}
#endif
