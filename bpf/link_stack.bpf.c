// XDP: copies the first 200 bytes of the frame onto the stack (a helper writes through a derived
// pointer) and passes when their byte sum is even, else drops; shorter frames pass.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define LEN 200

SEC("xdp")
int stack_sum(struct xdp_md *ctx)
{
	__u8 buf[LEN];
	__u32 sum = 0;
	int i;

	if (bpf_xdp_load_bytes(ctx, 0, buf, LEN))
		return XDP_PASS;
	for (i = 0; i < LEN; i++)
		sum += buf[i];
	return sum & 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
