#ifndef NPFS_CLIBPQ_SHIM_H
#define NPFS_CLIBPQ_SHIM_H
// PostgreSQL's client library, as Debian's libpq-dev installs it.
#include <libpq-fe.h>
#include <poll.h>
#endif
