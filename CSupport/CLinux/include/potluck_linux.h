// Linux constants that glibc declares only under _GNU_SOURCE, which Swift's Glibc module is built
// without. Reading them here, in a C file compiled with _GNU_SOURCE, keeps every other header of the
// package on Glibc's own settings (see CLibUring/shim.h for why that matters).
#pragma once

/// O_DIRECT: reads and writes move between the caller's aligned memory and the device, skipping the
/// page cache.
int potluck_open_direct(void);
