// liburing's static inline helpers import into Swift as they are, so this module mostly names the
// header. C is added here only for what Swift cannot import.
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

// Glibc declares these under _GNU_SOURCE only, which Swift's Glibc module is not built with.
extern const char *strerrorname_np(int errnum);

// SOCK_STREAM and SOCK_CLOEXEC are enumerators and macros at once in glibc; Swift sees neither once
// this header is in the same module graph, so their values come through functions.
static inline int potluck_sock_stream(void) { return SOCK_STREAM; }
static inline int potluck_sock_cloexec(void) { return SOCK_CLOEXEC; }
