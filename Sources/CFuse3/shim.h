#ifndef NPFS_CFUSE3_SHIM_H
#define NPFS_CFUSE3_SHIM_H

// The one place FUSE_USE_VERSION is set: 3.14's API, where fuse_session_loop_mt
// takes a fuse_loop_config and is a real function Swift can call.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <linux/fuse.h>   // struct fuse_open_out and FOPEN_STREAM, which libfuse 3.14 cannot express
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <errno.h>

// Macros Swift does not import.
static inline struct fuse_args npfs_fuse_args(int argc, char **argv) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return args;
}
static inline mode_t npfs_s_ifreg(void) { return S_IFREG; }
static inline mode_t npfs_s_ifdir(void) { return S_IFDIR; }
// Pipes open as direct-I/O stream files. Parallel direct writes let a second writer
// wait in npfs (interruptibly) instead of on the inode lock in the kernel, whenever
// the write does not reach past the kernel's idea of the file size.
static inline uint32_t npfs_fopen_stream_flags(void) {
    return FOPEN_DIRECT_IO | FOPEN_STREAM | FOPEN_NONSEEKABLE | FOPEN_PARALLEL_DIRECT_WRITES;
}

#endif
