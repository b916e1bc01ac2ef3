// XDP: a bounded loop the verifier walks iteration by iteration (a verifier log of several MiB at
// log level 1), then an unchecked packet read, so the reason for the rejection is the log's end.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int long_log(struct xdp_md *ctx)
{
	volatile __u32 sum = 0;
	__u8 *data = (void *)(long)ctx->data;

	for (__u32 i = 0; i < 12000; i++)
		sum += i;
	return data[sum & 1] ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
