// XDP: drops frames holding `pattern` at byte `offset` (read-only globals, set before load), passes others.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 offset = 12;
const volatile __u8 pattern[2] = { 0x88, 0xb5 }; /* EtherType 0x88b5: local experimental */

SEC("xdp")
int drop_pattern(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *at;

	if (offset > 1500)
		return XDP_PASS;
	at = data + offset;
	if ((void *)(at + 2) > data_end)
		return XDP_PASS;
	if (at[0] == pattern[0] && at[1] == pattern[1])
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
