// Compiled with _GNU_SOURCE (Package.swift), which these declarations need.
#include "CSystemShims.h"
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

int swiftmp_pipe2(int fds[2], int nonblocking) {
    return pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
}

int swiftmp_set_pipe_size(int fd, int size) {
    return fcntl(fd, F_SETPIPE_SZ, size);
}

int swiftmp_get_pipe_size(int fd) {
    return fcntl(fd, F_GETPIPE_SZ);
}

int swiftmp_bytes_readable(int fd) {
    int available = 0;
    return ioctl(fd, FIONREAD, &available) == 0 ? available : -1;
}

int swiftmp_memfd_create(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

int swiftmp_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int swiftmp_mutex_clocklock(pthread_mutex_t *mutex, const struct timespec *deadline) {
    return pthread_mutex_clocklock(mutex, CLOCK_MONOTONIC, deadline);
}
