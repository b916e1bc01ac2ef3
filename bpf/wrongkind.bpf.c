// Programs of the wrong kind for one hook or the other: what says so is the section (L3AF's
// "tc-ingress", unknown to libbpf 1.1) or only the BTF type of the context argument.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc-ingress")
int l3af_tc(struct __sk_buff *skb)
{
	return skb->len ? -1 : 2;
}

SEC("prog_skb")
int skb_context(struct __sk_buff *skb)
{
	return skb->len ? -1 : 2;
}

SEC("prog_xdp")
int xdp_context(struct xdp_md *ctx)
{
	return ctx->data_end > ctx->data ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
