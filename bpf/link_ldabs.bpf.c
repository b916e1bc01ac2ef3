// tc: reads byte 14 with a legacy LD_ABS load (which returns 0 from the program when the packet is
// shorter) and returns TC_ACT_SHOT when it is odd, else TC_ACT_UNSPEC.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");

SEC("tc")
int ldabs_odd(struct __sk_buff *skb)
{
	return load_byte(skb, 14) & 1 ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
