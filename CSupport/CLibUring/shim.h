// liburing's static inline helpers import into Swift as they are, so this module only names the
// header. C functions are added here only for what Swift cannot import (function-like macros).
#include <liburing.h>
#include <sys/eventfd.h>
