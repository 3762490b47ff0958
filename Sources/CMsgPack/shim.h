#ifndef SWIFT_MULTIPROCESSING_CMSGPACK_SHIM_H
#define SWIFT_MULTIPROCESSING_CMSGPACK_SHIM_H
// msgpack-c 4.x (Debian's libmsgpack-dev). Its packing functions are static
// inline in the headers, so Swift inlines them as C would.
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

// A copy of up to 16 bytes as two possibly overlapping fixed-size moves: the short
// bodies of keys and small strings, for which libc's memcpy (a call through the PLT
// and a dispatch on the length) costs more than the copy. `out` and `buf` do not overlap.
static inline void swiftmp_copy_short(char *out, const char *buf, size_t len) {
    if (len >= 8) {
        uint64_t head, tail;
        memcpy(&head, buf, 8); memcpy(&tail, buf + len - 8, 8);
        memcpy(out, &head, 8); memcpy(out + len - 8, &tail, 8);
    } else if (len >= 4) {
        uint32_t head, tail;
        memcpy(&head, buf, 4); memcpy(&tail, buf + len - 4, 4);
        memcpy(out, &head, 4); memcpy(out + len - 4, &tail, 4);
    } else if (len > 0) {
        out[0] = buf[0]; out[len / 2] = buf[len / 2]; out[len - 1] = buf[len - 1];
    }
}

// msgpack_sbuffer_write with its common case inline. msgpack-c's packer hands
// its write callback 1 to 9 bytes at a time (a header, a number), and for those a
// call to memcpy costs more than the copy: fixed sizes compile to plain moves.
// Growing the buffer is msgpack_sbuffer_write's.
static inline int swiftmp_sbuffer_write(void *data, const char *buf, size_t len) {
    msgpack_sbuffer *sbuf = (msgpack_sbuffer *)data;
    if (sbuf->alloc - sbuf->size >= len) {
        char *out = sbuf->data + sbuf->size;
        switch (len) {
        case 0: break;  // an empty body; data may still be NULL
        case 1: out[0] = buf[0]; break;
        case 2: memcpy(out, buf, 2); break;
        case 3: memcpy(out, buf, 3); break;
        case 5: memcpy(out, buf, 5); break;
        case 9: memcpy(out, buf, 9); break;
        default:
            if (len <= 16) { swiftmp_copy_short(out, buf, len); } else { memcpy(out, buf, len); }
            break;
        }
        sbuf->size += len;
        return 0;
    }
    return msgpack_sbuffer_write(data, buf, len);
}

// msgpack-c's packing functions once more, from its own template (pack.h does the
// same for msgpack_pack_*), under the prefix swiftmp_pack_. These write straight
// into the packer's msgpack_sbuffer with swiftmp_sbuffer_write instead of calling
// through the packer's callback pointer, which no compiler can see through: each
// write is then inlined, its length a constant. The packer must have been made
// with msgpack_packer_init(pk, sbuffer, …), as every _Packer is.
#define msgpack_pack_inline_func(name) static inline int swiftmp_pack ## name
#define msgpack_pack_inline_func_cint(name) static inline int swiftmp_pack ## name
#define msgpack_pack_inline_func_fixint(name) static inline int swiftmp_pack_fix ## name
#define msgpack_pack_user msgpack_packer*
#define msgpack_pack_append_buffer(user, buf, len) \
    return swiftmp_sbuffer_write((user)->data, (const char*)(buf), (len))
#include <msgpack/pack_template.h>

static inline int swiftmp_pack_str_with_body(msgpack_packer *pk, const void *b, size_t l) {
    int ret = swiftmp_pack_str(pk, l);
    if (ret != 0) { return ret; }
    return swiftmp_pack_str_body(pk, b, l);
}

static inline int swiftmp_pack_bin_with_body(msgpack_packer *pk, const void *b, size_t l) {
    int ret = swiftmp_pack_bin(pk, l);
    if (ret != 0) { return ret; }
    return swiftmp_pack_bin_body(pk, b, l);
}
#endif
