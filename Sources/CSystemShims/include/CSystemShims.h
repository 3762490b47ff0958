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

#endif

#include <stdint.h>

/// The shared control block of a queue: one per queue, in a memfd segment mapped
/// MAP_SHARED by every process holding the queue. Laid out in C so every process
/// (and language) agrees on it.
typedef struct swiftmp_queue_control {
    uint32_t magic;              // SWIFTMP_QUEUE_MAGIC once initialized
    uint32_t version;
    pthread_mutex_t write_lock;  // one writer of frames at a time (robust, process-shared)
    pthread_mutex_t read_lock;   // one reader of frames at a time (robust, process-shared)
    pthread_mutex_t state_lock;  // guards the fields below (robust, process-shared)
    // Wake-up words (futexes) instead of pthread condition variables: glibc's
    // process-shared condition variables are not robust to a waiter killed by
    // SIGKILL (a later broadcast waits forever for it to leave). A futex waiter
    // leaves nothing behind. Each word changes when its event happens.
    uint32_t not_full_seq;       // a slot was freed
    uint32_t all_done_seq;       // unfinished tasks reached 0
    int64_t maxsize;             // 0: unbounded
    int64_t count;               // items put (slot taken) and not yet got: Python's qsize, exact
    int64_t unfinished;          // JoinableQueue: items put and not yet task_done
    int32_t closed;
    // The frame a reader is taking, so the next reader can finish it if that one dies:
    int32_t read_active;         // a reader has begun a frame and not yet counted it
    int32_t read_header_have;    // header bytes read so far (0..12)
    uint8_t read_header[12];
    int64_t read_left;           // payload bytes still to read (-1 until the header is whole)
    // The frame a writer is putting in the pipe, for the same reason:
    int32_t write_active;        // a writer has begun a frame and not yet finished it
    int64_t write_total;         // bytes of that frame, header included
    int64_t write_left;          // bytes of it still to write
    uint64_t frames_written;     // frames begun by writers, in pipe order
    uint64_t frames_read;        // frames begun by readers, in pipe order
    uint64_t void_frame;         // 1 + the number of a frame a dead writer left unfinished (0: none)
} swiftmp_queue_control;

#define SWIFTMP_QUEUE_MAGIC 0x51554555u  /* "QUEU" */

/// Initializes a zeroed control block: the three robust process-shared mutexes.
/// 0 or an error number.
int swiftmp_queue_control_init(swiftmp_queue_control *control, int64_t maxsize);

/// Locks a robust mutex, waiting until `deadline` (CLOCK_MONOTONIC; NULL: forever).
/// Returns 0; EOWNERDEAD when the last owner died holding it (the lock is then held
/// and already made consistent: the caller repairs what the dead owner left);
/// ETIMEDOUT; or another error number.
int swiftmp_robust_lock(pthread_mutex_t *mutex, const struct timespec *deadline);
int swiftmp_unlock(pthread_mutex_t *mutex);

/// Waits while `*word == expected`, until woken or `deadline` (CLOCK_MONOTONIC,
/// absolute; NULL: forever), across processes. 0 when woken (or the word had
/// already changed), ETIMEDOUT, EINTR, or an error number.
/// The corresponding call is futex(FUTEX_WAIT_BITSET).
int swiftmp_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *deadline);
/// Wakes every process waiting on `word`. The corresponding call is futex(FUTEX_WAKE).
void swiftmp_futex_wake_all(uint32_t *word);
