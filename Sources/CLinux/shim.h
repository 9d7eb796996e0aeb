#ifndef NPFS_CLINUX_H
#define NPFS_CLINUX_H
// Linux headers that Swift's Glibc module leaves out: extended attributes (the client
// library), malloc's tuning (the daemon) and epoll (the tests).
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/xattr.h>
#endif
