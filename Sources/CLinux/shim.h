#ifndef NPFS_CLINUX_H
#define NPFS_CLINUX_H
// Linux headers that Swift's Glibc module leaves out: extended attributes (the client
// library), malloc's tuning and CPU affinity (the daemon), character widths (npfs
// status) and epoll (the tests).
#include <malloc.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/xattr.h>

// The columns a terminal gives a character (glibc's wcwidth, which <wchar.h> declares
// only with _XOPEN_SOURCE): -1 for a control character. Needs a UTF-8 locale.
#include <wchar.h>
int wcwidth(wchar_t c);
static inline int npfs_wcwidth(unsigned int c) { return wcwidth((wchar_t)c); }

// The CPUs this process may run on (its affinity mask, as taskset sets it), or 0.
// (The raw system call: glibc's wrapper needs _GNU_SOURCE, which would change the
// definitions this module shares with Glibc's.)
static inline int npfs_allowed_cpus(void) {
    unsigned long mask[16] = {0};
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    int count = 0;
    for (long i = 0; i < bytes / (long)sizeof mask[0]; i++) count += __builtin_popcountl(mask[i]);
    return count;
}

// Pins the calling thread to one CPU: 0, or -1 with errno (the tests move a thread
// between CPUs; the daemon pins each io_uring queue's thread to its CPU).
static inline int npfs_pin_thread(int cpu) {
    unsigned long mask[16] = {0};
    if (cpu < 0 || cpu >= (int)(8 * sizeof mask)) { errno = EINVAL; return -1; }
    mask[cpu / (8 * sizeof mask[0])] |= 1UL << (cpu % (8 * sizeof mask[0]));
    return (int)syscall(SYS_sched_setaffinity, 0, sizeof mask, mask);
}

// The calling thread's id (gettid, which needs _GNU_SOURCE in glibc's headers).
static inline pid_t npfs_thread_id(void) { return (pid_t)syscall(SYS_gettid); }

// Pins thread `tid` to `cpu` if the process (its main thread, as `taskset -a -p` leaves it)
// may run there, else lets it run wherever the process may; does nothing if that is how it
// is already. 1 if the thread has its CPU to itself among the process's others (the
// process may run on `cpu` and on another CPU), 0 if not, -1 with errno.
static inline int npfs_repin_thread(pid_t tid, int cpu) {
    unsigned long allowed[16] = {0}, want[16] = {0}, have[16] = {0};
    if (syscall(SYS_sched_getaffinity, getpid(), sizeof allowed, allowed) <= 0) return -1;
    int alone = 0;
    if (cpu >= 0 && cpu < (int)(8 * sizeof allowed) && ((allowed[cpu / 64] >> (cpu % 64)) & 1)) {
        want[cpu / 64] = 1UL << (cpu % 64);
        int count = 0;
        for (int i = 0; i < 16; i++) count += __builtin_popcountl(allowed[i]);
        alone = count > 1;
    } else {
        for (int i = 0; i < 16; i++) want[i] = allowed[i];
    }
    if (syscall(SYS_sched_getaffinity, tid, sizeof have, have) > 0) {
        int same = 1;
        for (int i = 0; i < 16; i++) same &= have[i] == want[i];
        if (same) return alone;
    }
    if (syscall(SYS_sched_setaffinity, tid, sizeof want, want) != 0) return -1;
    return alone;
}

// Lets the calling thread run on every CPU again (as far as its cpuset allows).
static inline int npfs_unpin_thread(void) {
    unsigned long mask[16];
    for (int i = 0; i < 16; i++) mask[i] = ~0UL;
    return (int)syscall(SYS_sched_setaffinity, 0, sizeof mask, mask);
}

// Whether `cpu` is among the CPUs the calling thread may run on.
static inline int npfs_cpu_allowed(int cpu) {
    unsigned long mask[16] = {0};
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    if (cpu < 0 || cpu >= (int)(8 * sizeof mask) || bytes <= (long)(cpu / 8)) return 0;
    return (int)((mask[cpu / (8 * sizeof mask[0])] >> (cpu % (8 * sizeof mask[0]))) & 1);
}
#endif
