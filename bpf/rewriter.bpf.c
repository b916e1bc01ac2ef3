// XDP: increments byte 14 of the frame (the first byte after the Ethernet header), then passes it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int rewrite_byte(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if ((void *)(data + 15) > data_end)
		return XDP_PASS;
	data[14]++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
