/* connlimit: a limit on concurrent TCP connections per source (XDP), and its companion that
 * releases a connection when it closes (a tracepoint).
 *
 * xdp_connlimit counts, per IPv4 source address, the connections it let open and that have not
 * closed: a TCP SYN (SYN set, ACK clear) of a connection it does not know yet opens one, unless
 * the source already has `max_conns` open: then the SYN is dropped (XDP_DROP). Every other
 * packet passes (XDP_PASS) to the next program. A FIN or RST from the source closes the
 * connection. Each connection is released once, whoever sees its end first: a retransmitted SYN
 * counts once, and a FIN followed by a RST frees one slot.
 *
 * connlimit_release (SEC tracepoint/sock/inet_sock_set_state) sees every TCP socket of the host
 * close, in any network namespace, whatever packets the XDP program missed: a connection the
 * server aborted (its RST goes out, and the client answers nothing), or one the client closed
 * on a path the XDP program is not on. Run alone, xdp_connlimit keeps the slot of such a
 * connection until the LRU maps forget it. The two run as two units of one object, the
 * companion taking the limiter's maps (MapsFrom=); see units.companions.d/connlimit-release.unit.
 *
 * Maps (pinned by name under the unit's bpffs folder, so counts survive reloads):
 *   config      ARRAY, 1 entry, key u32 0 -> struct { u32 max_conns; }
 *               0 means the built-in default (rodata default_max_conns = 100).
 *   conns       LRU_HASH, IPv4 source (network order) -> u64 open connections.
 *   flows       LRU_HASH, struct flow (client, server, ports) -> u8: the open connections.
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

/* One TCP connection, as the client's packets name it (ports in network order). */
struct flow {
	__be32 client;
	__be32 server;
	__be16 client_port;
	__be16 server_port;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

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

/* Releases the connection's slot, once: only the call that forgets the flow does. */
static __always_inline int close_conn(const struct flow *flow)
{
	__u64 *count;

	if (bpf_map_delete_elem(&flows, flow) != 0)
		return 0;
	count = bpf_map_lookup_elem(&conns, &flow->client);
	if (count && *count > 0)
		__sync_fetch_and_sub(count, 1);
	return 1;
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
	struct flow flow = {
		.client = ip->saddr, .server = ip->daddr, .client_port = tcp->source, .server_port = tcp->dest,
	};
	__u8 open = 1;

	if (is_syn(tcp)) {
		if (bpf_map_lookup_elem(&flows, &flow))
			return XDP_PASS; /* a retransmission: counted already */
		if (!open_conn(ip->saddr))
			return XDP_DROP;
		bpf_map_update_elem(&flows, &flow, &open, BPF_ANY);
		return XDP_PASS;
	}
	if (tcp->fin || tcp->rst)
		close_conn(&flow);
	return XDP_PASS;
}

/* The fields of the sock/inet_sock_set_state tracepoint (its format in tracefs, unchanged
 * since Linux 4.16). */
struct inet_sock_set_state {
	__u64 common;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport; /* host order */
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

#define TCP_CLOSE 7
#define AF_INET 2

SEC("tracepoint/sock/inet_sock_set_state")
int connlimit_release(struct inet_sock_set_state *ctx)
{
	struct flow flow = {};

	if (ctx->newstate != TCP_CLOSE || ctx->family != AF_INET || ctx->protocol != IPPROTO_TCP)
		return 0;
	/* The server's socket: the client is its peer. */
	__builtin_memcpy(&flow.client, ctx->daddr, 4);
	__builtin_memcpy(&flow.server, ctx->saddr, 4);
	flow.client_port = bpf_htons(ctx->dport);
	flow.server_port = bpf_htons(ctx->sport);
	if (close_conn(&flow))
		return 0;
	/* The client's socket, when the client runs on this host too. */
	__builtin_memcpy(&flow.client, ctx->saddr, 4);
	__builtin_memcpy(&flow.server, ctx->daddr, 4);
	flow.client_port = bpf_htons(ctx->sport);
	flow.server_port = bpf_htons(ctx->dport);
	close_conn(&flow);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
