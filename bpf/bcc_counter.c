// bcc dialect, XDP: counts packets in slot 0 of `packets` and returns VERDICT (XDP_PASS unless Define=VERDICT=...).
#include <uapi/linux/bpf.h>

#ifndef VERDICT
#define VERDICT XDP_PASS
#endif

BPF_ARRAY(packets, u64, 1);

int bcc_count(struct xdp_md *ctx)
{
	packets.increment(0);
	return VERDICT;
}
