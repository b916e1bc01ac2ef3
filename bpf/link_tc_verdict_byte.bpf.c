// tc: returns byte 15 of the frame modulo 11, minus 1 (TC_ACT_UNSPEC -1 .. TC_ACT_TRAP 8, and 9, no action),
// and increments that byte; frames shorter than 16 bytes get TC_ACT_OK.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_verdict_byte(struct __sk_buff *skb)
{
	__u8 *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 v;

	if ((void *)(data + 16) > data_end)
		return TC_ACT_OK;
	v = data[15];
	data[15] = v + 1;
	return (int)(v % 11) - 1;
}

char LICENSE[] SEC("license") = "GPL";
