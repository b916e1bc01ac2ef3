// tc: counts every packet in slot 0 of an array map named like counter.bpf.o's, for units that
// share that map (MapsFrom=), then lets it go on.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifndef PACKETS_SLOTS
#define PACKETS_SLOTS 1
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PACKETS_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

SEC("tc")
int tc_count_packets(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&packets, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
	return -1; /* TCX_NEXT */
}

char LICENSE[] SEC("license") = "GPL";
