// Sends COUNT 64-byte test frames (broadcast, EtherType 0x88B5) out of IFNAME with sendmmsg, in
// batches of 64, and prints the process's CPU time and wall time per frame in ns. On a veth the
// peer's receive path (tc, XDP, the stack) runs in this process's softirqs, so its CPU time per
// frame is the whole path's cost. Usage: sender IFNAME COUNT [BATCH [EVICT_KB]]: with EVICT_KB,
// the sender writes that many KiB of memory of its own after each batch, as other work on a busy
// machine would, so that the receive path finds less of its data in the caches.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define FRAME 64
#define BATCH 64
#define ETH_P_TEST 0x88B5

static double now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 5) {
		fprintf(stderr, "usage: %s IFNAME COUNT [BATCH [EVICT_KB]]\n", argv[0]);
		return 2;
	}
	long count = atol(argv[2]);
	int max_batch = argc > 3 ? atoi(argv[3]) : BATCH;
	size_t evict = argc > 4 ? (size_t)atol(argv[4]) << 10 : 0;
	unsigned char *scratch = evict ? malloc(evict) : NULL;
	if (max_batch < 1 || max_batch > BATCH || (evict && !scratch)) {
		fprintf(stderr, "BATCH is 1..%d\n", BATCH);
		return 2;
	}
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_TEST));
	struct sockaddr_ll addr = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_TEST),
				   .sll_ifindex = (int)if_nametoindex(argv[1])};
	if (fd < 0 || !addr.sll_ifindex || bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		perror(argv[1]);
		return 1;
	}
	unsigned char frame[FRAME] = {0};
	memset(frame, 0xff, 6);                                       // broadcast
	memcpy(frame + 6, "\x02\xb0\xf0\x00\x00\x01", 6);             // a local source
	frame[12] = ETH_P_TEST >> 8, frame[13] = ETH_P_TEST & 0xff;   // no stack answers it
	struct iovec iov = {.iov_base = frame, .iov_len = FRAME};
	struct mmsghdr msgs[BATCH];
	for (int i = 0; i < BATCH; i++)
		msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov, .msg_iovlen = 1}};

	long sent = 0, refused = 0;
	double cpu = 0, wall0 = now_ns(CLOCK_MONOTONIC);
	while (sent < count) {
		int batch = count - sent < max_batch ? (int)(count - sent) : max_batch;
		double cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);  // the eviction is not the path's cost
		int n = sendmmsg(fd, msgs, batch, 0);
		cpu += now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
		if (n < 0) {
			if (errno != ENOBUFS && errno != EAGAIN) {
				perror("sendmmsg");
				return 1;
			}
			refused++;  // the device queue was full: nothing sent, try again
			continue;
		}
		sent += n;
		if (evict)
			memset(scratch, (int)sent, evict);
	}
	double wall = now_ns(CLOCK_MONOTONIC) - wall0;
	printf("%.2f %.2f %ld\n", cpu / sent, wall / sent, refused);
	return 0;
}
