// The benchmark's component as an object of its own, for libxdp's dispatcher (datapath_traffic.py
// --libxdp), which loads each program from its ELF file into a freplace slot: look at byte 14 of the
// frame, 0xff drops, anything else goes on (XDP_PASS, on which the dispatcher runs the next program).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int component(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;

	if (data + 15 > end)
		return XDP_PASS;
	return data[14] == 0xff ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
