#define _GNU_SOURCE
#include <fcntl.h>

#include "potluck_linux.h"

int potluck_open_direct(void) { return O_DIRECT; }
