// XDP: sums 1..10 with bpf_loop and a callback (a BPF_PSEUDO_FUNC reference); passes when the sum is 55, else drops.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static int add_index(__u32 index, void *ctx)
{
	__u64 *sum = ctx;

	*sum += index + 1;
	return 0;
}

SEC("xdp")
int loop_sum(struct xdp_md *ctx)
{
	__u64 sum = 0;

	bpf_loop(10, add_index, &sum, 0);
	return sum == 55 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
