#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "potluck_linux.h"

int potluck_open_direct(void) { return O_DIRECT; }

int potluck_seek_data(void) { return SEEK_DATA; }

// The kernel's uapi structures and number for cachestat; Debian's headers predate it.
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

struct potluck_cachestat_range {
    unsigned long long offset;
    unsigned long long length;
};

struct potluck_cachestat {
    unsigned long long cached;
    unsigned long long dirty;
    unsigned long long writeback;
    unsigned long long evicted;
    unsigned long long recently_evicted;
};

long long potluck_cached_pages(int fd, unsigned long long offset, unsigned long long length) {
    struct potluck_cachestat_range range = {offset, length};
    struct potluck_cachestat stat = {0};
    if (syscall(__NR_cachestat, fd, &range, &stat, 0) != 0) return -1;
    return (long long)stat.cached;
}

// PAGEMAP_SCAN's uapi (linux/fs.h since 6.7); Debian's headers predate it.
#define POTLUCK_PAGEMAP_SCAN _IOWR('f', 16, struct potluck_pm_scan_arg)
#define POTLUCK_PAGE_IS_HUGE (1 << 6)

struct potluck_page_region {
    unsigned long long start;
    unsigned long long end;
    unsigned long long categories;
};

struct potluck_pm_scan_arg {
    unsigned long long size;
    unsigned long long flags;
    unsigned long long start;
    unsigned long long end;
    unsigned long long walk_end;
    unsigned long long vec;
    unsigned long long vec_len;
    unsigned long long max_pages;
    unsigned long long category_inverted;
    unsigned long long category_mask;
    unsigned long long category_anyof_mask;
    unsigned long long return_mask;
};

int potluck_is_huge_mapped(int pagemap_fd, const void *address) {
    unsigned long long page = (unsigned long long)address & ~4095ULL;
    struct potluck_page_region region = {0};
    struct potluck_pm_scan_arg arg = {
        .size = sizeof arg,
        .start = page,
        .end = page + 4096,
        .vec = (unsigned long long)&region,
        .vec_len = 1,
        .category_mask = POTLUCK_PAGE_IS_HUGE,
        .return_mask = POTLUCK_PAGE_IS_HUGE,
    };
    int found = ioctl(pagemap_fd, POTLUCK_PAGEMAP_SCAN, &arg);
    return found < 0 ? -1 : found > 0;
}
