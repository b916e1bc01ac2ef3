// tc: returns the action in byte 14 of the packet as a signed byte (-1 UNSPEC .. 8 TRAP), counting per action.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 10);
	__type(key, __u32);
	__type(value, __u64);
} actions SEC(".maps"); /* key: action + 1 */

SEC("tc")
int choose_action(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__s8 *at = data + 14;
	__u32 key;
	__u64 *count;
	int action;

	if ((void *)(at + 1) > data_end)
		return TC_ACT_OK;
	action = *at;
	if (action < TC_ACT_UNSPEC || action > TC_ACT_TRAP)
		return TC_ACT_OK;
	key = action + 1;
	count = bpf_map_lookup_elem(&actions, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return action;
}

char LICENSE[] SEC("license") = "GPL";
