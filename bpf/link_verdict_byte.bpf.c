// XDP: returns byte 15 of the frame modulo 6 (5 is no XDP verdict) and increments that byte, so each
// component of a chain sees the change of the one before; frames shorter than 16 bytes pass.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int verdict_byte(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 v;

	if ((void *)(data + 16) > data_end)
		return XDP_PASS;
	v = data[15];
	data[15] = v + 1;
	return v % 6;
}

char LICENSE[] SEC("license") = "GPL";
