/* SPDX-License-Identifier: GPL-2.0 */
/*
 * TCP zero-copy receive for the guest programs: the constants and the UAPI struct of
 * getsockopt(TCP_ZEROCOPY_RECEIVE), own copies (Debian 12's headers predate some), and
 * the sender's MSG_ZEROCOPY completions.
 */
#ifndef KMATRIX_ZEROCOPY_H
#define KMATRIX_ZEROCOPY_H

#include <stdint.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#ifndef TCP_ZEROCOPY_RECEIVE
#define TCP_ZEROCOPY_RECEIVE 35
#endif
#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SIOCINQ
#define SIOCINQ FIONREAD
#endif

/* struct tcp_zerocopy_receive (layout as of Linux 5.11+). */
struct kz_zc {
	uint64_t address;
	uint32_t length;
	uint32_t recv_skip_hint;
	uint32_t inq;
	int32_t err;
	uint64_t copybuf_address;
	int32_t copybuf_len;
	uint32_t flags;
	uint64_t msg_control;
	uint64_t msg_controllen;
	uint32_t msg_flags;
	uint32_t reserved;
};

/* Reads MSG_ZEROCOPY completions off the error queue until it is empty; how many. */
static inline uint64_t kz_drain_completions(int fd)
{
	char control[256];
	uint64_t n = 0;

	for (;;) {
		struct msghdr msg = { .msg_control = control, .msg_controllen = sizeof(control) };

		if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return n;
		n++;
	}
}

#endif
