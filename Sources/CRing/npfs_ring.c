#include "npfs_ring.h"
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

struct npfs_ring { struct io_uring ring; };

// fuse_uring_cmd_req: the command in an SQE128's extra 80 bytes.
struct npfs_uring_cmd_req {
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

struct npfs_ring *npfs_ring_create(unsigned entries, int defer) {
    struct npfs_ring *ring = calloc(1, sizeof *ring);
    if (!ring) return NULL;
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    params.flags = IORING_SETUP_SQE128;
    if (defer) params.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int made = io_uring_queue_init_params(entries, &ring->ring, &params);
    if (made == -EINVAL && defer) {   // a kernel before DEFER_TASKRUN (6.1)
        memset(&params, 0, sizeof params);
        params.flags = IORING_SETUP_SQE128;
        made = io_uring_queue_init_params(entries, &ring->ring, &params);
    }
    if (made < 0) {
        free(ring);
        errno = -made;
        return NULL;
    }
    return ring;
}

void npfs_ring_destroy(struct npfs_ring *ring) {
    io_uring_queue_exit(&ring->ring);
    free(ring);
}

int npfs_ring_fd(const struct npfs_ring *ring) { return ring->ring.ring_fd; }

// The next SQE (both halves zeroed), submitting what is queued if the ring is full.
static struct io_uring_sqe *next_sqe(struct npfs_ring *ring) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring->ring);
    if (!sqe) {
        io_uring_submit(&ring->ring);
        sqe = io_uring_get_sqe(&ring->ring);
    }
    if (sqe) memset(sqe, 0, 2 * sizeof *sqe);
    return sqe;
}

int npfs_ring_fuse(struct npfs_ring *ring, int fuse_fd, uint32_t op, uint16_t qid,
                   uint64_t commit_id, void *buffers, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(ring);
    if (!sqe) return -EBUSY;
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fuse_fd;
    sqe->cmd_op = op;
    if (buffers) {
        sqe->addr = (uint64_t)(uintptr_t)buffers;
        sqe->len = 2;
    }
    struct npfs_uring_cmd_req *command = (struct npfs_uring_cmd_req *)sqe->cmd;
    command->qid = qid;
    command->commit_id = commit_id;
    sqe->user_data = user_data;
    return 0;
}

int npfs_ring_read(struct npfs_ring *ring, int fd, uint64_t *into, uint64_t user_data) {
    struct io_uring_sqe *sqe = next_sqe(ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_read(sqe, fd, into, sizeof *into, 0);
    sqe->user_data = user_data;
    return 0;
}

int npfs_ring_message(struct npfs_ring *ring, int target_fd, uint32_t value, uint64_t data, uint64_t failed) {
    struct io_uring_sqe *sqe = next_sqe(ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_msg_ring(sqe, target_fd, value, data, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    sqe->user_data = failed;
    return 0;
}

int npfs_ring_submit_and_wait(struct npfs_ring *ring) {
    int submitted = io_uring_submit_and_wait(&ring->ring, 1);
    return submitted < 0 ? submitted : 0;
}

int npfs_ring_submit(struct npfs_ring *ring) {
    int submitted = io_uring_submit(&ring->ring);
    return submitted < 0 ? submitted : 0;
}

int npfs_ring_poll(struct npfs_ring *ring) {
    int submitted = io_uring_submit_and_get_events(&ring->ring);
    return submitted < 0 ? submitted : (int)io_uring_cq_ready(&ring->ring);
}

int npfs_ring_next(struct npfs_ring *ring, uint64_t *user_data, int32_t *result) {
    struct io_uring_cqe *cqe = NULL;
    if (__io_uring_peek_cqe(&ring->ring, &cqe, NULL) != 0 || !cqe) return 0;
    *user_data = cqe->user_data;
    *result = cqe->res;
    io_uring_cqe_seen(&ring->ring, cqe);
    return 1;
}

int npfs_doorbell(void) { return eventfd(0, EFD_CLOEXEC); }
