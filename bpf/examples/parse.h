/* Packet parsing shared by the examples: Ethernet with at most one VLAN tag, IPv4, TCP.
 * Every helper bounds-checks against data_end and returns NULL for a frame it cannot parse,
 * so callers treat "not parsed" as "not mine" and let the packet go on.
 * Everything is __always_inline: no subprograms, so a linker can splice the program inline. */
#ifndef BPFUNITS_EXAMPLES_PARSE_H
#define BPFUNITS_EXAMPLES_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define IP_FRAG_OFFSET_MASK 0x1fff

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

/* The network header after Ethernet and an optional 802.1Q/802.1ad tag; *proto gets its
 * EtherType (network order). */
static __always_inline void *l3_header(void *data, void *data_end, __be16 *proto)
{
	struct ethhdr *eth = data;
	void *next = eth + 1;

	if (next > data_end)
		return NULL;
	*proto = eth->h_proto;
	if (*proto == bpf_htons(ETH_P_8021Q) || *proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *vlan = next;

		if ((void *)(vlan + 1) > data_end)
			return NULL;
		*proto = vlan->proto;
		next = vlan + 1;
	}
	return next;
}

/* The IPv4 header, if the frame carries a complete one (ihl >= 5, options included). */
static __always_inline struct iphdr *ipv4_header(void *data, void *data_end)
{
	__be16 proto;
	struct iphdr *ip = l3_header(data, data_end, &proto);

	if (!ip || proto != bpf_htons(ETH_P_IP) || (void *)(ip + 1) > data_end)
		return NULL;
	if (ip->ihl < 5 || (void *)ip + ip->ihl * 4 > data_end)
		return NULL;
	return ip;
}

/* The TCP header of an IPv4 packet; NULL for other protocols and for non-first fragments,
 * which carry no TCP header. */
static __always_inline struct tcphdr *tcp_header(struct iphdr *ip, void *data_end)
{
	struct tcphdr *tcp;

	if (ip->protocol != IPPROTO_TCP || (ip->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK)))
		return NULL;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > data_end)
		return NULL;
	return tcp;
}

/* A connection opening: SYN without ACK (a SYN-ACK answers one, it does not open one). */
static __always_inline int is_syn(const struct tcphdr *tcp)
{
	return tcp->syn && !tcp->ack;
}

#endif
