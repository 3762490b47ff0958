#ifndef SWIFT_MULTIPROCESSING_CSYSTEMSHIMS_H
#define SWIFT_MULTIPROCESSING_CSYSTEMSHIMS_H
// Linux calls Swift's Glibc module does not show (they need _GNU_SOURCE, or are
// variadic). Each is a thin wrapper; errors come back as -1 with errno set, or as
// the error number, exactly as from the C function.
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <pthread.h>
#include <spawn.h>

/// pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)).
int swiftmp_pipe2(int fds[2], int nonblocking);
/// fcntl(fd, F_SETPIPE_SZ, size): the pipe's new capacity, or -1.
int swiftmp_set_pipe_size(int fd, int size);
/// fcntl(fd, F_GETPIPE_SZ): the pipe's capacity, or -1.
int swiftmp_get_pipe_size(int fd);
/// ioctl(fd, FIONREAD): bytes waiting to be read, or -1.
int swiftmp_bytes_readable(int fd);
/// memfd_create(name, MFD_CLOEXEC).
int swiftmp_memfd_create(const char *name);
/// posix_spawn_file_actions_addclosefrom_np(actions, from).
int swiftmp_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);
/// pthread_mutex_clocklock(mutex, CLOCK_MONOTONIC, deadline).
int swiftmp_mutex_clocklock(pthread_mutex_t *mutex, const struct timespec *deadline);

#include <stdbool.h>
#include <stdint.h>

/// Bytes of the read-ahead buffer in a queue's control block: readers take up to
/// this much from the pipe in one read() and leave what is not theirs for the next.
#define SWIFTMP_READ_AHEAD 65536
/// Processes whose frames wait in their writer thread, counted (see `swiftmp_writer`).
#define SWIFTMP_WRITER_SLOTS 64

/// A process that put items whose frames are not yet in the pipe (they wait in its
/// writer thread), and how many. If the process dies, another frees their slots.
typedef struct swiftmp_writer {
    int32_t pid;                 // 0: a free entry; -1: being claimed or freed
    int32_t unused;
    int64_t start;               // the process's start time, so a reused pid is not taken for it
    int64_t pending;
} swiftmp_writer;

/// What readers have taken from the pipe. Changed only under the read lock, and
/// only by `swiftmp_commit_read`, so that a reader killed at any instruction
/// leaves either the old record or the new one, never a mix.
typedef struct swiftmp_read_record {
    uint32_t start;              // the read-ahead bytes not yet taken: [start, end)
    uint32_t end;
    int64_t taken;               // frames taken from the pipe, ever
    int64_t skip;                // bytes of a frame taken but still in the pipe, to skip (its reader died, or refused it)
} swiftmp_read_record;

/// The frame a writer is putting in the pipe; the write lock's counterpart of the
/// above. A frame of at most PIPE_BUF bytes enters the pipe in one write, so only a
/// larger one is ever recorded here.
typedef struct swiftmp_write_record {
    int64_t total;               // bytes of the frame being written, header included (0: none)
    int64_t left;                // bytes of it not yet in the pipe
    int64_t ended_by_reader;     // its writer is gone, and a reader is filling it out
} swiftmp_write_record;

/// The shared control block of a queue: one per queue, in a memfd segment mapped
/// MAP_SHARED by every process holding the queue. Laid out in C so every process
/// (and language) agrees on it. Counters are changed with atomic instructions, so
/// no lock guards them and a process killed at any point leaves them whole.
typedef struct swiftmp_queue_control {
    uint32_t magic;              // SWIFTMP_QUEUE_MAGIC once initialized
    uint32_t version;
    pthread_mutex_t write_lock;  // one writer of frames at a time (robust, process-shared)
    pthread_mutex_t read_lock;   // one reader of frames at a time (robust, process-shared)
    int64_t maxsize;             // 0: unbounded
    // Fields are grouped by who writes them, 64 bytes (a cache line) apart, so that
    // a busy writer and a busy reader do not keep taking lines from each other.
    uint8_t apart1[64];
    // Written by put and writers:
    int64_t put;    // slots taken by put, ever, less items that never reached the pipe
    int64_t unfinished;          // JoinableQueue: items put and not yet task_done
    uint32_t write_current;      // which of `write` is current
    swiftmp_write_record write[2];
    uint8_t apart2[64];
    // Written by readers:
    int64_t taken;  // the current read record's `taken`, for count = put - taken
    uint32_t read_current;       // which of `read` is current
    // Wake-up words (futexes) instead of pthread condition variables: glibc's
    // process-shared condition variables are not robust to a waiter killed by
    // SIGKILL (a later broadcast waits forever for it to leave). A futex waiter
    // leaves nothing behind but its mark in *_waiters, which costs a spare wake-up.
    uint32_t not_full_seq;       // changes when a slot is freed
    swiftmp_read_record read[2];
    uint8_t apart3[64];
    // Written by waiters, and rarely:
    uint32_t not_full_waiters;
    uint32_t all_done_seq;       // changes when unfinished reaches 0
    uint32_t all_done_waiters;
    swiftmp_writer writers[SWIFTMP_WRITER_SLOTS];
    uint8_t read_ahead[SWIFTMP_READ_AHEAD];
} swiftmp_queue_control;

#define SWIFTMP_QUEUE_MAGIC 0x51554555u  /* "QUEU" */

/// Initializes a zeroed control block: the two robust process-shared mutexes.
/// 0 or an error number.
int swiftmp_queue_control_init(swiftmp_queue_control *control, int64_t maxsize);

/// The read-ahead buffer (too large an array for Swift to import as a field).
static inline uint8_t *swiftmp_read_ahead(swiftmp_queue_control *control) { return control->read_ahead; }

static inline swiftmp_read_record swiftmp_read_record_current(const swiftmp_queue_control *control) {
    return control->read[__atomic_load_n(&control->read_current, __ATOMIC_ACQUIRE) & 1];
}

/// Writes `next` beside the current read record, then makes it current with one store.
static inline void swiftmp_read_record_commit(swiftmp_queue_control *control, swiftmp_read_record next) {
    uint32_t other = (__atomic_load_n(&control->read_current, __ATOMIC_ACQUIRE) & 1) ^ 1;
    control->read[other] = next;
    __atomic_store_n(&control->read_current, other, __ATOMIC_SEQ_CST);
    __atomic_store_n(&control->taken, next.taken, __ATOMIC_SEQ_CST);
}

static inline swiftmp_write_record swiftmp_write_record_current(const swiftmp_queue_control *control) {
    return control->write[__atomic_load_n(&control->write_current, __ATOMIC_ACQUIRE) & 1];
}

/// Writes `next` beside the current write record, then makes it current with one store.
static inline void swiftmp_write_record_commit(swiftmp_queue_control *control, swiftmp_write_record next) {
    uint32_t other = (__atomic_load_n(&control->write_current, __ATOMIC_ACQUIRE) & 1) ^ 1;
    control->write[other] = next;
    __atomic_store_n(&control->write_current, other, __ATOMIC_SEQ_CST);
}

// Atomic operations on shared counters (sequentially consistent).
static inline int64_t swiftmp_load64(const int64_t *value) { return __atomic_load_n(value, __ATOMIC_SEQ_CST); }
static inline void swiftmp_store64(int64_t *value, int64_t new_value) { __atomic_store_n(value, new_value, __ATOMIC_SEQ_CST); }
/// Adds `delta`; returns the new value.
static inline int64_t swiftmp_add64(int64_t *value, int64_t delta) { return __atomic_add_fetch(value, delta, __ATOMIC_SEQ_CST); }
/// Replaces `expected` with `desired`; false (nothing changed) if the value was not `expected`.
static inline bool swiftmp_replace64(int64_t *value, int64_t expected, int64_t desired) {
    return __atomic_compare_exchange_n(value, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint32_t swiftmp_load32(const uint32_t *value) { return __atomic_load_n(value, __ATOMIC_SEQ_CST); }
static inline int64_t swiftmp_exchange64(int64_t *value, int64_t new_value) { return __atomic_exchange_n(value, new_value, __ATOMIC_SEQ_CST); }
static inline int32_t swiftmp_load32s(const int32_t *value) { return __atomic_load_n(value, __ATOMIC_SEQ_CST); }
static inline bool swiftmp_replace32s(int32_t *value, int32_t expected, int32_t desired) {
    return __atomic_compare_exchange_n(value, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
/// The writers table (too large an array of structs for Swift to import as a field, indexed).
static inline swiftmp_writer *swiftmp_writers(swiftmp_queue_control *control) { return control->writers; }
static inline void swiftmp_add32(uint32_t *value, int32_t delta) { __atomic_add_fetch(value, (uint32_t)delta, __ATOMIC_SEQ_CST); }

/// Locks a robust mutex, waiting until `deadline` (CLOCK_MONOTONIC; NULL: forever).
/// Returns 0; EOWNERDEAD when the last owner died holding it (the lock is then held
/// and already made consistent: the caller repairs what the dead owner left);
/// ETIMEDOUT; or another error number.
int swiftmp_robust_lock(pthread_mutex_t *mutex, const struct timespec *deadline);
int swiftmp_unlock(pthread_mutex_t *mutex);
/// Takes a robust mutex if it is free now: 0, EOWNERDEAD (as above), EBUSY.
int swiftmp_robust_trylock(pthread_mutex_t *mutex);

/// Waits while `*word == expected`, until woken or `deadline` (CLOCK_MONOTONIC,
/// absolute; NULL: forever), across processes. 0 when woken (or the word had
/// already changed), ETIMEDOUT, EINTR, or an error number.
/// The corresponding call is futex(FUTEX_WAIT_BITSET).
int swiftmp_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *deadline);
/// Wakes every process waiting on `word`. The corresponding call is futex(FUTEX_WAKE).
void swiftmp_futex_wake_all(uint32_t *word);

#endif
