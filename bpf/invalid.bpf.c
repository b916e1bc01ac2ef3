// XDP: reads packet data without a bounds check, so the verifier rejects it; its pinned map tests cleanup.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} invalid_state SEC(".maps");

SEC("xdp")
int unchecked_read(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&invalid_state, &key);

	if (value)
		*value += 1;
	return data[0] ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
