// XDP: an object defining 63 maps, one more than a chain holds of its units' (64 less bpfunits' 2), of
// which its program uses one.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAP(n) struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); \
	__type(value, __u64); } map##n SEC(".maps");
#define MAP8(n) MAP(n##0) MAP(n##1) MAP(n##2) MAP(n##3) MAP(n##4) MAP(n##5) MAP(n##6) MAP(n##7)

MAP8(1) MAP8(2) MAP8(3) MAP8(4) MAP8(5) MAP8(6) MAP8(7)
MAP(80) MAP(81) MAP(82) MAP(83) MAP(84) MAP(85) MAP(86)

SEC("xdp")
int many_maps(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&map10, &key);

	if (value)
		*value += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
