// Linux constants that glibc declares only under _GNU_SOURCE, which Swift's Glibc module is built
// without. Reading them here, in a C file compiled with _GNU_SOURCE, keeps every other header of the
// package on Glibc's own settings (see CLibUring/shim.h for why that matters).
#pragma once

/// O_DIRECT: reads and writes move between the caller's aligned memory and the device, skipping the
/// page cache.
int potluck_open_direct(void);

/// How many pages of bytes [offset, offset + length) of `fd` are in the page cache, through cachestat
/// (Linux 6.5), which counts a large folio at once where mincore looks up every 4 KiB page. -1 with
/// errno (ENOSYS before 6.5).
long long potluck_cached_pages(int fd, unsigned long long offset, unsigned long long length);

/// Whether the page holding `address` is mapped by a huge (PMD) page-table entry, asked through the
/// PAGEMAP_SCAN ioctl (Linux 6.7) on an open /proc/self/pagemap: 1 if so, 0 if not, -1 with errno.
int potluck_is_huge_mapped(int pagemap_fd, const void *address);

/// SEEK_DATA: `lseek` to the next byte at or after an offset that is data rather than a hole.
int potluck_seek_data(void);

struct sockaddr_storage;

/// Asks the kernel to queue ICMP errors for datagrams sent from UDP socket `fd` (IP_RECVERR, or
/// IPV6_RECVERR when `ipv6`), so that an unconnected socket learns which destination refused. 0, or -1
/// with errno.
int potluck_udp_queue_errors(int fd, int ipv6);

/// Takes the oldest error queued on `fd` without waiting: writes the destination of the datagram that
/// caused it to `destination` and returns the error number it carries; 0 when none is queued (the
/// socket's pending error is then cleared too), -1 with errno when reading failed.
int potluck_udp_take_error(int fd, struct sockaddr_storage *destination);

/// Gives the free pages of every malloc arena back to the kernel (glibc's malloc_trim(0), declared in
/// <malloc.h>, which Swift's Glibc module leaves out). 1 if memory was released, 0 if not.
int potluck_release_free_memory(void);

/// pipe2(fds, O_CLOEXEC): a pipe whose ends no child inherits, close-on-exec from the start (set
/// afterwards, a child another thread spawns in between inherits them). 0, or -1 with errno.
int potluck_pipe_cloexec(int fds[2]);

/// syncfs(fd): flushes the file system holding `fd` (declared only under _GNU_SOURCE, which Swift's
/// Glibc module leaves out). 0, or -1 with errno.
int potluck_syncfs(int fd);
