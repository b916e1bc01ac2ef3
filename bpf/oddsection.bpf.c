// XDP program in a section libbpf cannot type ("xdp_ratelimiting"); returns XDP_DROP.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp_ratelimiting")
int ratelimit(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
