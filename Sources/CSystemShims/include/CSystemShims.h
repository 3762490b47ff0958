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
