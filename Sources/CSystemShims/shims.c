// Compiled with _GNU_SOURCE (Package.swift), which these declarations need.
#include "CSystemShims.h"
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>

int swiftmp_pipe2(int fds[2], int nonblocking) {
    return pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
}

int swiftmp_set_pipe_size(int fd, int size) {
    return fcntl(fd, F_SETPIPE_SZ, size);
}

int swiftmp_get_pipe_size(int fd) {
    return fcntl(fd, F_GETPIPE_SZ);
}

int swiftmp_memfd_create(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

int swiftmp_memfd_create_sealable(const char *name) {
    return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

int swiftmp_seal_size(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
}

int swiftmp_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>

int swiftmp_ring_control_init(swiftmp_ring_control *control, uint64_t capacity, uint64_t data_offset, int64_t maxsize) {
    pthread_mutexattr_t mutex_attr;
    int result;
    if ((result = pthread_mutexattr_init(&mutex_attr))) return result;
    pthread_mutexattr_setpshared(&mutex_attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&mutex_attr, PTHREAD_MUTEX_ROBUST);
    if ((result = pthread_mutex_init(&control->slots_lock, &mutex_attr))
        || (result = pthread_mutex_init(&control->write_lock, &mutex_attr))
        || (result = pthread_mutex_init(&control->read_lock, &mutex_attr))) {
        pthread_mutexattr_destroy(&mutex_attr);
        return result;
    }
    pthread_mutexattr_destroy(&mutex_attr);
    control->capacity = capacity;
    control->data_offset = data_offset;
    control->maxsize = maxsize;
    control->slots_intent.entry = -1;
    control->write_intent.entry = -1;
    control->read_intent.entry = -1;
    control->version = SWIFTMP_RING_VERSION;
    __atomic_store_n(&control->magic, SWIFTMP_RING_MAGIC, __ATOMIC_SEQ_CST);
    return 0;
}

int swiftmp_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int swiftmp_robust_lock(pthread_mutex_t *mutex, const struct timespec *deadline) {
    int result;
    do {
        result = deadline ? pthread_mutex_clocklock(mutex, CLOCK_MONOTONIC, deadline) : pthread_mutex_lock(mutex);
    } while (result == EINTR);
    if (result == EOWNERDEAD) pthread_mutex_consistent(mutex);
    return result;
}

int swiftmp_robust_trylock(pthread_mutex_t *mutex) {
    int result = pthread_mutex_trylock(mutex);
    if (result == EOWNERDEAD) pthread_mutex_consistent(mutex);
    return result;
}

int swiftmp_unlock(pthread_mutex_t *mutex) {
    return pthread_mutex_unlock(mutex);
}

int swiftmp_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *deadline) {
    long result = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY);
    if (result == 0) return 0;
    return errno == EAGAIN ? 0 : errno;
}

void swiftmp_futex_wake_all(uint32_t *word) {
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

const uint32_t SWIFTMP_EPOLLIN = EPOLLIN, SWIFTMP_EPOLLOUT = EPOLLOUT, SWIFTMP_EPOLLERR = EPOLLERR,
    SWIFTMP_EPOLLHUP = EPOLLHUP, SWIFTMP_EPOLLET = EPOLLET;

int swiftmp_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int swiftmp_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    static const int ops[3] = {EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL};
    if (op < 0 || op > 2) { errno = EINVAL; return -1; }
    struct epoll_event event = {.events = events, .data.u64 = data};
    return epoll_ctl(epfd, ops[op], fd, &event);
}

int swiftmp_epoll_wait(int epfd, uint32_t *events, uint64_t *data, int max, int timeout_ms) {
    struct epoll_event ready[64];
    if (max > 64) { max = 64; }
    int n = epoll_wait(epfd, ready, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        events[i] = ready[i].events;
        data[i] = ready[i].data.u64;
    }
    return n;
}

int swiftmp_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int swiftmp_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}
