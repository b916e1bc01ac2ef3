// XDP, multi-buffer aware (SEC("xdp.frags"): loaded with BPF_F_XDP_HAS_FRAGS): counts frames and
// their bytes over every buffer, then passes them.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

SEC("xdp.frags")
int frags_counter(struct xdp_md *ctx)
{
	__u32 frames = 0, bytes = 1;
	__u64 *n = bpf_map_lookup_elem(&packets, &frames);
	__u64 *len = bpf_map_lookup_elem(&packets, &bytes);

	if (n)
		__sync_fetch_and_add(n, 1);
	if (len)
		__sync_fetch_and_add(len, bpf_xdp_get_buff_len(ctx));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
