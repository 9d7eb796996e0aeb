#ifndef NPFS_CLINUX_H
#define NPFS_CLINUX_H
// Linux headers that Swift's Glibc module leaves out: extended attributes (the client
// library), malloc's tuning and CPU affinity (the daemon), character widths (npfs
// status) and epoll (the tests).
#include <malloc.h>
#include <sys/syscall.h>
#include <unistd.h>
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
#endif
