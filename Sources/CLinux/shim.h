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

// CPU affinity by the raw system calls: glibc's wrappers need _GNU_SOURCE, which would
// change the definitions this module shares with Glibc's. A mask is 1024 CPUs.
#define NPFS_MASK_WORDS 16
#define NPFS_WORD_BITS (8 * (int)sizeof(unsigned long))

// The affinity mask of thread `tid` (0: the calling one) into `mask` (zeroed first): the
// bytes the kernel wrote, or -1 with errno.
static inline long npfs_affinity(pid_t tid, unsigned long mask[NPFS_MASK_WORDS]) {
    for (int i = 0; i < NPFS_MASK_WORDS; i++) mask[i] = 0;
    return syscall(SYS_sched_getaffinity, tid, NPFS_MASK_WORDS * sizeof mask[0], mask);
}

static inline int npfs_mask_count(const unsigned long mask[NPFS_MASK_WORDS]) {
    int count = 0;
    for (int i = 0; i < NPFS_MASK_WORDS; i++) count += __builtin_popcountl(mask[i]);
    return count;
}

static inline int npfs_mask_has(const unsigned long mask[NPFS_MASK_WORDS], int cpu) {
    return cpu >= 0 && cpu < NPFS_MASK_WORDS * NPFS_WORD_BITS && ((mask[cpu / NPFS_WORD_BITS] >> (cpu % NPFS_WORD_BITS)) & 1);
}

// The CPUs this process may run on (its affinity mask, as taskset sets it), or 0.
static inline int npfs_allowed_cpus(void) {
    unsigned long mask[NPFS_MASK_WORDS];
    return npfs_affinity(0, mask) > 0 ? npfs_mask_count(mask) : 0;
}

// Whether `cpu` is among the CPUs the calling thread may run on.
static inline int npfs_cpu_allowed(int cpu) {
    unsigned long mask[NPFS_MASK_WORDS];
    return npfs_affinity(0, mask) > 0 && npfs_mask_has(mask, cpu);
}

// Pins the calling thread to one CPU: 0, or -1 with errno (the tests move a thread
// between CPUs).
static inline int npfs_pin_thread(int cpu) {
    unsigned long mask[NPFS_MASK_WORDS] = {0};
    if (cpu < 0 || cpu >= NPFS_MASK_WORDS * NPFS_WORD_BITS) { errno = EINVAL; return -1; }
    mask[cpu / NPFS_WORD_BITS] = 1UL << (cpu % NPFS_WORD_BITS);
    return (int)syscall(SYS_sched_setaffinity, 0, sizeof mask, mask);
}

// Lets the calling thread run on every CPU again (as far as its cpuset allows).
static inline int npfs_unpin_thread(void) {
    unsigned long mask[NPFS_MASK_WORDS];
    for (int i = 0; i < NPFS_MASK_WORDS; i++) mask[i] = ~0UL;
    return (int)syscall(SYS_sched_setaffinity, 0, sizeof mask, mask);
}

// The calling thread's id (gettid, which needs _GNU_SOURCE in glibc's headers).
static inline pid_t npfs_thread_id(void) { return (pid_t)syscall(SYS_gettid); }

// Pins thread `tid` to `cpu` if the process (its main thread, as `taskset -a -p` leaves it)
// may run there, else lets it run wherever the process may; does nothing if that is how it
// is already (the daemon's io_uring queue threads). 1 if the thread has its CPU to itself
// among the process's others (the process may run on `cpu` and on another CPU), 0 if not,
// -1 with errno.
static inline int npfs_repin_thread(pid_t tid, int cpu) {
    unsigned long allowed[NPFS_MASK_WORDS], want[NPFS_MASK_WORDS] = {0}, have[NPFS_MASK_WORDS];
    if (npfs_affinity(getpid(), allowed) <= 0) return -1;
    int alone = npfs_mask_has(allowed, cpu);
    if (alone) {
        want[cpu / NPFS_WORD_BITS] = 1UL << (cpu % NPFS_WORD_BITS);
        alone = npfs_mask_count(allowed) > 1;
    } else {
        for (int i = 0; i < NPFS_MASK_WORDS; i++) want[i] = allowed[i];
    }
    if (npfs_affinity(tid, have) > 0) {
        int same = 1;
        for (int i = 0; i < NPFS_MASK_WORDS; i++) same &= have[i] == want[i];
        if (same) return alone;
    }
    if (syscall(SYS_sched_setaffinity, tid, sizeof want, want) != 0) return -1;
    return alone;
}
#endif
