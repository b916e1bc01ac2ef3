// cgroup_skb egress, for units that share `order_seq` and `order_at` (MapsFrom=): each program
// notes once when it ran, as the how-manieth program to run (from 1), in slot `mark` of
// `order_at`; so the slots show the order in which the kernel ran the units' programs.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 mark = 0; /* Global=mark=N: the unit's slot */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} order_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} order_at SEC(".maps");

SEC("cgroup_skb/egress")
int cgroup_egress_order(struct __sk_buff *skb)
{
	__u32 zero = 0, slot = mark;
	__u64 *seq = bpf_map_lookup_elem(&order_seq, &zero);
	__u64 *at = bpf_map_lookup_elem(&order_at, &slot);

	/* Plain, not an atomic fetch-and-add: that needs Linux 5.12 (the matrix has 5.10), and the
	 * programs of one packet run one after the other on one CPU. */
	if (seq && at && !*at) {
		*seq += 1;
		*at = *seq;
	}
	return 1; /* let it go */
}

char LICENSE[] SEC("license") = "GPL";
