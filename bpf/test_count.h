// Counting test frames (EtherType 0x88B5, sent by tests/traffic.py) into slot 0 of an array map
// named by COUNTS_MAP, which the including object defines its own copy of.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_TEST 0x88B5
#define TCX_NEXT -1

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} COUNTS_MAP SEC(".maps");

static __always_inline void count(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	__u32 slot = 0;
	__u64 *n;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_TEST))
		return;
	n = bpf_map_lookup_elem(&COUNTS_MAP, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

#define XDP_COUNTER(name)                                                   \
	SEC("xdp") int name(struct xdp_md *ctx)                                 \
	{                                                                       \
		count((void *)(long)ctx->data, (void *)(long)ctx->data_end);    \
		return XDP_PASS;                                                \
	}

#define TC_COUNTER(name)                                                    \
	SEC("tc") int name(struct __sk_buff *skb)                               \
	{                                                                       \
		count((void *)(long)skb->data, (void *)(long)skb->data_end);    \
		return TCX_NEXT;                                                \
	}
