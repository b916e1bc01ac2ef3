// XDP: the main function asks a __noinline subprogram for the verdict (XDP_DROP on frames shorter than 60 bytes).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __noinline int verdict_for(__u32 len)
{
	return len < 60 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int call_subprog(struct xdp_md *ctx)
{
	return verdict_for(ctx->data_end - ctx->data);
}

char LICENSE[] SEC("license") = "GPL";
