/* counter: packets and bytes per IP protocol (tc, meant for tc-egress).
 *
 * Sorts each packet into TCP, UDP, ICMP (ICMP and ICMPv6) or other (non-IP, IPv6 extension
 * headers, truncated frames) by the IPv4 protocol or IPv6 next header after Ethernet and one
 * optional VLAN tag, adds it and its length (skb->len) to that protocol's counters, and
 * returns TC_ACT_UNSPEC (-1, tcx "next"): it never decides, so programs after it still run.
 * Headers are read from the skb's linear part, which holds them for locally sent packets.
 *
 * Maps (pinned by name under the unit's bpffs folder, so counts survive reloads):
 *   traffic     PERCPU_ARRAY, 4 entries, key u32 0 TCP, 1 UDP, 2 ICMP, 3 other
 *               -> struct { u64 packets; u64 bytes; } per CPU; readers sum the CPUs.
 *
 * Read:  bpftool map dump pinned /sys/fs/bpf/bpfunits/units/counter/traffic
 * Reset: bpftool map update pinned /sys/fs/bpf/bpfunits/units/counter/traffic \
 *            key 0 0 0 0 value 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 *        (bpftool writes the one value to every CPU)
 */
#include "parse.h"
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>

enum traffic_class {
	TRAFFIC_TCP,
	TRAFFIC_UDP,
	TRAFFIC_ICMP,
	TRAFFIC_OTHER,
	TRAFFIC_CLASSES,
};

struct traffic {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TRAFFIC_CLASSES);
	__type(key, __u32);
	__type(value, struct traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} traffic SEC(".maps");

/* The IP protocol number of the frame, or 255 (reserved) when it carries none we can read. */
static __always_inline __u8 ip_protocol(void *data, void *data_end)
{
	__be16 proto;
	void *l3 = l3_header(data, data_end, &proto);

	if (!l3)
		return IPPROTO_RAW;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		return (void *)(ip + 1) <= data_end ? ip->protocol : IPPROTO_RAW;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		return (void *)(ip6 + 1) <= data_end ? ip6->nexthdr : IPPROTO_RAW;
	}
	return IPPROTO_RAW;
}

static __always_inline __u32 traffic_class(__u8 protocol)
{
	switch (protocol) {
	case IPPROTO_TCP:
		return TRAFFIC_TCP;
	case IPPROTO_UDP:
		return TRAFFIC_UDP;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return TRAFFIC_ICMP;
	default:
		return TRAFFIC_OTHER;
	}
}

SEC("tc")
int tc_counter(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 key = traffic_class(ip_protocol(data, data_end));
	struct traffic *t = bpf_map_lookup_elem(&traffic, &key);

	if (t) {
		/* per-CPU: no other writer */
		t->packets += 1;
		t->bytes += skb->len;
	}
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
