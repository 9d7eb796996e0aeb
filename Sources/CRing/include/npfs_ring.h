#ifndef NPFS_RING_H
#define NPFS_RING_H
// npfs's rings for FUSE over io_uring, on liburing (Debian: liburing-dev), which only
// npfs_ring.c includes: its io_uring.h clashes with the kernel's that other modules see.
// The kernel's FUSE-over-io_uring ABI (Linux 6.14, include/uapi/linux/fuse.h), which the
// Debian 12 kernel headers predate, is defined here under npfs_ names, in its layout.
#include <stdint.h>

// fuse_uring_ent_in_out: what the kernel and the daemon tell each other about an entry.
struct npfs_uring_ent_in_out {
    uint64_t flags;
    uint64_t commit_id;      // the request's unique, set by the kernel
    uint32_t payload_sz;     // bytes in the payload buffer, either way
    uint32_t padding;
    uint64_t reserved;
};

// fuse_uring_req_header: an entry's first buffer (288 bytes).
struct npfs_uring_req_header {
    char in_out[128];        // fuse_in_header in, fuse_out_header out
    char op_in[128];         // the request's first (fixed-size) argument
    struct npfs_uring_ent_in_out ring_ent_in_out;
};

enum {
    NPFS_URING_CMD_REGISTER = 1,
    NPFS_URING_CMD_COMMIT_AND_FETCH = 2,
};

// One io_uring, opaque.
struct npfs_ring;

// A ring with 128-byte SQEs (the FUSE command needs them), with task work deferred to
// the calling thread's own waits if `defer` (and the kernel can): NULL with errno if not.
struct npfs_ring *npfs_ring_create(unsigned entries, int defer);
void npfs_ring_destroy(struct npfs_ring *ring);
int npfs_ring_fd(const struct npfs_ring *ring);

// A FUSE command on /dev/fuse's descriptor: REGISTER (with the entry's two iovecs) or
// COMMIT_AND_FETCH (`buffers` NULL). 0 or a negative errno.
int npfs_ring_fuse(struct npfs_ring *ring, int fuse_fd, uint32_t op, uint16_t qid,
                   uint64_t commit_id, void *buffers, uint64_t user_data);
// A read of 8 bytes from an eventfd.
int npfs_ring_read(struct npfs_ring *ring, int fd, uint64_t *into, uint64_t user_data);
// A completion posted on another ring (user_data `data`, res `value`); none on this one,
// unless it fails (then user_data `failed`).
int npfs_ring_message(struct npfs_ring *ring, int target_fd, uint32_t value, uint64_t data, uint64_t failed);
// Submits what is queued and waits for a completion: 0 or a negative errno.
int npfs_ring_submit_and_wait(struct npfs_ring *ring);
// Submits what is queued without waiting: 0 or a negative errno.
int npfs_ring_submit(struct npfs_ring *ring);
// Submits what is queued and runs the ring's deferred work without waiting: the number
// of completions ready, or a negative errno.
int npfs_ring_poll(struct npfs_ring *ring);
// The next completion already posted: 1 if there was one.
int npfs_ring_next(struct npfs_ring *ring, uint64_t *user_data, int32_t *result);

// An eventfd (close-on-exec), or -1 with errno.
int npfs_doorbell(void);
#endif
