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
/// memfd_create(name, MFD_CLOEXEC).
int swiftmp_memfd_create(const char *name);
/// memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING).
int swiftmp_memfd_create_sealable(const char *name);
/// fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL): its size is fixed for good.
int swiftmp_seal_size(int fd);
/// posix_spawn_file_actions_addclosefrom_np(actions, from).
int swiftmp_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);

#include <stdbool.h>
#include <stdint.h>

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int swiftmp_eventfd(void);

// MARK: Readiness, for the async forms (see _Reactor.swift)

/// Interest and readiness bits of epoll (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLET).
extern const uint32_t SWIFTMP_EPOLLIN, SWIFTMP_EPOLLOUT, SWIFTMP_EPOLLERR, SWIFTMP_EPOLLHUP, SWIFTMP_EPOLLET;
/// epoll_create1(EPOLL_CLOEXEC).
int swiftmp_epoll_create(void);
/// epoll_ctl(epfd, EPOLL_CTL_ADD / MOD / DEL for op 0 / 1 / 2, fd, {events, data.u64 = data}).
int swiftmp_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// epoll_wait(epfd, …, max, timeout_ms), each ready entry's events and data.u64 into
/// the two arrays (of at least `max` elements). The number of entries, or -1.
int swiftmp_epoll_wait(int epfd, uint32_t *events, uint64_t *data, int max, int timeout_ms);
/// pidfd_open(pid, 0): a descriptor readable once the process has ended (Linux 5.3).
int swiftmp_pidfd_open(pid_t pid);
/// pidfd_send_signal(pidfd, sig, NULL, 0): a signal to that process only, never to
/// one that took its pid after it was reaped (Linux 5.1).
int swiftmp_pidfd_send_signal(int pidfd, int sig);

// MARK: A queue's shared segment (see _Ring.swift, which owns the protocol)

/// Processes that put on a queue, with their slot counts (see `swiftmp_writer`).
#define SWIFTMP_WRITER_SLOTS 128
#define SWIFTMP_RING_MAGIC 0x474e4952u  /* "RING" */
#define SWIFTMP_RING_VERSION 4

/// A process that puts on the queue. `reserved` and `published` only grow while it
/// lives; `reserved - published` are its items that hold a slot but are not in the
/// ring yet (they wait in its writer thread). If it dies, another process frees them.
typedef struct swiftmp_writer {
    int32_t pid;                 // 0: a free entry
    int32_t unused;
    int64_t start;               // the process's start time, so a reused pid is not taken for it
    int64_t reserved;            // slots it took, ever (slots lock)
    int64_t published;           // of those, items whose frame entered the ring (write lock)
} swiftmp_writer;

/// The record each side writes before its commit store (see _Ring.swift): if the
/// lock holder dies after the store, the next holder finishes what it says.
typedef struct swiftmp_intent {
    uint64_t key;                // the commit store's value: an index, or the slots sequence
    int64_t counter;             // reserved (slots) or taken (read)
    int64_t lost;                // read: frames ended by an abort
    int32_t entry;               // a writers-table index, or -1
    int32_t free_entry;          // slots: the entry is given back
    int64_t entry_value;         // the entry's reserved (slots) or published (write)
} swiftmp_intent;

/// The control block at the start of a queue's memfd segment; the ring's bytes
/// follow at `data_offset`. Fields are grouped by the lock that guards them, a
/// cache line apart, so a busy writer and a busy reader do not share lines.
typedef struct swiftmp_ring_control {
    uint32_t magic;
    uint32_t version;
    uint64_t capacity;           // bytes in the ring: a power of two
    uint64_t data_offset;        // where they start, from the segment's start
    int64_t maxsize;             // 0: no limit
    pthread_mutex_t slots_lock;  // robust, process-shared: held only for a few stores
    pthread_mutex_t write_lock;  // one writer of frames at a time
    pthread_mutex_t read_lock;   // one reader of frames at a time
    // Each side's fields on lines of their own (padding, not _Alignas: Swift does not
    // import over-aligned fields), so a busy writer and a busy reader do not take
    // lines from each other, and the waiter counts, read on every commit, on a line
    // written only when someone goes to sleep.
    uint8_t apart1[64];
    uint64_t slots_seq;          // slots lock: commits of the slot counts
    int64_t reserved;            // items put, ever, less those lost before entering the ring
    swiftmp_intent slots_intent;
    int64_t done;                // taskDone calls, ever (one atomic add each, no lock)
    uint8_t apart2[64];
    uint64_t write_index;        // write lock: bytes published; bit 0: an item is open
    swiftmp_intent write_intent;
    uint8_t apart3[64];
    uint64_t read_index;         // read lock: bytes consumed; bit 0: skip to the item's end
    int64_t taken;               // items taken, ever
    int64_t lost;                // items taken whose writer died before their end
    swiftmp_intent read_intent;
    uint8_t apart4[64];
    uint32_t data_waiters;       // readers asleep on write_index's low word
    uint32_t space_waiters;      // writers asleep on read_index's low word
    uint32_t pollers;            // processes waiting on the readiness eventfd
    uint32_t slot_pollers;       // async putters and joiners waiting on it for a slot or for tasks done
    uint32_t slot_event;         // futex: changes when a slot may have been freed
    uint32_t slot_waiters;
    uint32_t done_event;         // futex: changes when every task may be done
    uint32_t done_waiters;
    uint8_t apart5[64];
    swiftmp_writer writers[SWIFTMP_WRITER_SLOTS];
} swiftmp_ring_control;

/// Writes an intent, its key first and each field after the one before (release
/// stores), so that a holder killed half-way leaves a key that no commit matches.
static inline void swiftmp_intent_write(swiftmp_intent *intent, uint64_t key, int64_t counter, int64_t lost,
                                        int32_t entry, int32_t free_entry, int64_t entry_value) {
    __atomic_store_n(&intent->key, key, __ATOMIC_RELEASE);
    __atomic_store_n(&intent->counter, counter, __ATOMIC_RELEASE);
    __atomic_store_n(&intent->lost, lost, __ATOMIC_RELEASE);
    __atomic_store_n(&intent->entry, entry, __ATOMIC_RELEASE);
    __atomic_store_n(&intent->free_entry, free_entry, __ATOMIC_RELEASE);
    __atomic_store_n(&intent->entry_value, entry_value, __ATOMIC_RELEASE);
}

/// Initializes a zeroed control block: its three robust process-shared mutexes.
/// 0 or an error number.
int swiftmp_ring_control_init(swiftmp_ring_control *control, uint64_t capacity, uint64_t data_offset, int64_t maxsize);

/// The writers table (an array of structs Swift imports as a tuple).
static inline swiftmp_writer *swiftmp_ring_writers(swiftmp_ring_control *control) { return control->writers; }

// MARK: Atomics on shared memory (sequentially consistent unless named otherwise)

static inline int64_t swiftmp_load64(const int64_t *v) { return __atomic_load_n(v, __ATOMIC_SEQ_CST); }
static inline void swiftmp_store64(int64_t *v, int64_t n) { __atomic_store_n(v, n, __ATOMIC_SEQ_CST); }
static inline int64_t swiftmp_add64(int64_t *v, int64_t d) { return __atomic_add_fetch(v, d, __ATOMIC_SEQ_CST); }
static inline bool swiftmp_cas64(int64_t *v, int64_t expected, int64_t desired) {
    return __atomic_compare_exchange_n(v, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint64_t swiftmp_load_u64(const uint64_t *v) { return __atomic_load_n(v, __ATOMIC_SEQ_CST); }
static inline uint64_t swiftmp_load_u64_acquire(const uint64_t *v) { return __atomic_load_n(v, __ATOMIC_ACQUIRE); }
static inline void swiftmp_store_u64(uint64_t *v, uint64_t n) { __atomic_store_n(v, n, __ATOMIC_SEQ_CST); }
static inline uint32_t swiftmp_load32(const uint32_t *v) { return __atomic_load_n(v, __ATOMIC_SEQ_CST); }
static inline void swiftmp_store32(uint32_t *v, uint32_t n) { __atomic_store_n(v, n, __ATOMIC_SEQ_CST); }
static inline uint32_t swiftmp_add32(uint32_t *v, uint32_t d) { return __atomic_add_fetch(v, d, __ATOMIC_SEQ_CST); }
static inline int32_t swiftmp_load32s(const int32_t *v) { return __atomic_load_n(v, __ATOMIC_SEQ_CST); }
static inline void swiftmp_store32s(int32_t *v, int32_t n) { __atomic_store_n(v, n, __ATOMIC_SEQ_CST); }
/// A spin-wait hint to the processor (x86 `pause`).
static inline void swiftmp_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

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
