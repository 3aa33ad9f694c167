#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
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

int potluck_udp_queue_errors(int fd, int ipv6) {
    int on = 1;
    return ipv6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on)
                : setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on);
}

int potluck_udp_take_error(int fd, struct sockaddr_storage *destination) {
    char control[512];
    char payload[1];
    struct iovec vector = {.iov_base = payload, .iov_len = sizeof payload};
    struct msghdr message = {
        .msg_name = destination,
        .msg_namelen = sizeof *destination,
        .msg_iov = &vector,
        .msg_iovlen = 1,
        .msg_control = control,
        .msg_controllen = sizeof control,
    };
    if (recvmsg(fd, &message, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        // The queue is empty, but the socket's pending error stays set (and polls as POLLERR, and fails
        // the next send) until it is read.
        int pending = 0;
        socklen_t length = sizeof pending;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &length);
        return 0;
    }
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        int ipv4 = header->cmsg_level == IPPROTO_IP && header->cmsg_type == IP_RECVERR;
        int ipv6 = header->cmsg_level == IPPROTO_IPV6 && header->cmsg_type == IPV6_RECVERR;
        if (ipv4 || ipv6) {
            struct sock_extended_err error;
            memcpy(&error, CMSG_DATA(header), sizeof error);
            if (error.ee_errno != 0) return (int)error.ee_errno;
        }
    }
    // An entry without an extended error (not expected): report it as a refusal of that destination.
    return ECONNREFUSED;
}

int potluck_release_free_memory(void) { return malloc_trim(0); }

int potluck_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int potluck_syncfs(int fd) { return syncfs(fd); }
