// liburing's static inline helpers import into Swift as they are, so this module mostly names the
// header. C is added here only for what Swift cannot import.
//
// liburing.h defines _GNU_SOURCE and _XOPEN_SOURCE before including system headers. A header that
// Swift's Glibc module has already seen without them must not be read again with them, or clang
// finds two different definitions of the same struct (fd_set names its member `fds_bits` under
// _XOPEN_SOURCE, `__fds_bits` without) whenever a file imports both modules. So the system headers
// come first, with Glibc's own settings; liburing.h then only adds its declarations.
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <signal.h>
#include <time.h>
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
// struct statx, which glibc declares only under _GNU_SOURCE; the kernel header has it plainly.
#include <linux/stat.h>
// The kernel's io_uring.h, not liburing's copy of it (both use one include guard): swift-system's
// CSystem module (under the daemon's HTTP server) includes the kernel's, and clang refuses two
// different definitions of `struct io_uring_sqe` in one module graph.
#include <linux/io_uring.h>

#include <liburing.h>

// Glibc declares these under _GNU_SOURCE only, which Swift's Glibc module is not built with.
extern const char *strerrorname_np(int errnum);

// SOCK_STREAM, SOCK_DGRAM and SOCK_CLOEXEC are enumerators and macros at once in glibc; Swift sees neither once
// this header is in the same module graph, so their values come through functions.
static inline int potluck_sock_stream(void) { return SOCK_STREAM; }
static inline int potluck_sock_dgram(void) { return SOCK_DGRAM; }
static inline int potluck_sock_cloexec(void) { return SOCK_CLOEXEC; }
