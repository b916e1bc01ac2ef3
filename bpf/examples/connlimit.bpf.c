/* connlimit: a limit on concurrent TCP connections per source (XDP).
 *
 * Counts, per IPv4 source address, the connections it opened and has not closed: +1 for
 * each TCP SYN (SYN set, ACK clear) it lets through, -1 for each FIN or RST from that source
 * (never below 0). A SYN from a source that already has `max_conns` open is dropped
 * (XDP_DROP); every other packet passes (XDP_PASS) to the next program.
 * The count is approximate by design: it sees only one direction, so a retransmitted SYN
 * counts twice, a connection closed by FIN and then RST frees two slots, and one the peer
 * closed silently keeps its slot until the LRU map forgets the source.
 *
 * Maps (pinned by name under the unit's bpffs folder, so counts survive reloads):
 *   config      ARRAY, 1 entry, key u32 0 -> struct { u32 max_conns; }
 *               0 means the built-in default (rodata default_max_conns = 100).
 *   conns       LRU_HASH, IPv4 source (network order) -> u64 open connections.
 *
 * Configure in the unit (at most 20 connections per source):
 *   [Map]
 *   Entry=config 0 {max_conns=20}
 * Inspect: bpftool map dump pinned /sys/fs/bpf/bpfunits/units/connlimit/conns
 */
#include "parse.h"

struct connlimit_config {
	__u32 max_conns; /* open connections per source */
};

const volatile __u32 default_max_conns = 100;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct connlimit_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __be32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conns SEC(".maps");

/* Counts a new connection from `saddr`; false when it already has the most allowed. */
static __always_inline int open_conn(__be32 saddr)
{
	__u32 zero = 0;
	struct connlimit_config *cfg = bpf_map_lookup_elem(&config, &zero);
	__u64 limit = cfg && cfg->max_conns ? cfg->max_conns : default_max_conns;
	__u64 *count = bpf_map_lookup_elem(&conns, &saddr);
	__u64 one = 1;

	if (!count) {
		/* Another CPU may insert first: then count on its entry. */
		if (bpf_map_update_elem(&conns, &saddr, &one, BPF_NOEXIST) == 0)
			return 1;
		count = bpf_map_lookup_elem(&conns, &saddr);
		if (!count)
			return 1;
	}
	if (*count >= limit)
		return 0;
	__sync_fetch_and_add(count, 1);
	return 1;
}

static __always_inline void close_conn(__be32 saddr)
{
	__u64 *count = bpf_map_lookup_elem(&conns, &saddr);

	if (count && *count > 0)
		__sync_fetch_and_sub(count, 1);
}

SEC("xdp")
int xdp_connlimit(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = ipv4_header(data, data_end);
	struct tcphdr *tcp;

	if (!ip)
		return XDP_PASS;
	tcp = tcp_header(ip, data_end);
	if (!tcp)
		return XDP_PASS;
	if (is_syn(tcp))
		return open_conn(ip->saddr) ? XDP_PASS : XDP_DROP;
	if (tcp->fin || tcp->rst)
		close_conn(ip->saddr);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
