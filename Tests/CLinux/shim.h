#ifndef NPFS_TESTS_CLINUX_H
#define NPFS_TESTS_CLINUX_H
// Linux headers the tests use that Swift's Glibc module leaves out.
#include <sys/epoll.h>
#include <sys/xattr.h>
#endif
