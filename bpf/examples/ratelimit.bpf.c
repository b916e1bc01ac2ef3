/* ratelimit: a per-source rate limit for new TCP connections (XDP).
 *
 * Each IPv4 source address has a token bucket for TCP SYNs (SYN set, ACK clear): it holds
 * up to `burst` tokens and refills at `rate` tokens per second; a SYN takes a token, and a
 * SYN that finds the bucket empty is dropped (XDP_DROP). Everything else (other TCP segments,
 * UDP, ICMP, IPv6, ARP, frames too short to parse) passes (XDP_PASS) to the next program.
 * The bucket is kept in its virtual-time form (GCRA): one u64 per source, the time at which
 * the bucket would be full again, so no division happens per packet beyond rate -> interval.
 * Concurrent SYNs from one source on two CPUs may both take the last token: the limit is
 * approximate by at most one SYN per CPU.
 *
 * Maps (pinned by name under the unit's bpffs folder, so they survive reloads):
 *   config      ARRAY, 1 entry, key u32 0 -> struct { u32 rate; u32 burst; }
 *               0 in a field means the built-in default (rodata default_rate = 10 SYN/s,
 *               default_burst = 20).
 *   syn_buckets LRU_HASH, IPv4 source (network order) -> u64 CLOCK_MONOTONIC ns; the
 *               least recently seen sources are forgotten when it is full.
 *
 * Configure in the unit (rate 50/s, burst 100):
 *   [Map]
 *   Entry=config 0 {rate=50 burst=100}
 * or the built-in defaults, at load: [Program] Global=default_rate=50 and Global=default_burst=100.
 * Forget one source's bucket (198.18.0.1):
 *   bpftool map delete pinned /sys/fs/bpf/bpfunits/units/ratelimit/syn_buckets key 198 18 0 1
 */
#include "parse.h"

#define NSEC_PER_SEC 1000000000ULL

struct ratelimit_config {
	__u32 rate;  /* SYNs per second per source */
	__u32 burst; /* bucket size: SYNs a quiet source may send at once */
};

const volatile __u32 default_rate = 10;
const volatile __u32 default_burst = 20;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ratelimit_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __be32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} syn_buckets SEC(".maps");

/* Takes a token from `saddr`'s bucket; false when it is empty. */
static __always_inline int take_token(__be32 saddr)
{
	__u32 zero = 0;
	struct ratelimit_config *cfg = bpf_map_lookup_elem(&config, &zero);
	__u64 rate = cfg && cfg->rate ? cfg->rate : default_rate;
	__u64 burst = cfg && cfg->burst ? cfg->burst : default_burst;
	__u64 interval = NSEC_PER_SEC / rate; /* ns per token */
	__u64 now = bpf_ktime_get_ns();
	__u64 *full_at = bpf_map_lookup_elem(&syn_buckets, &saddr);
	__u64 start, next;

	if (!full_at) {
		next = now + interval;
		bpf_map_update_elem(&syn_buckets, &saddr, &next, BPF_ANY);
		return 1;
	}
	/* A bucket that was full before now has spent nothing: count from now. */
	start = *full_at > now ? *full_at : now;
	next = start + interval;
	if (next - now > burst * interval)
		return 0;
	*full_at = next;
	return 1;
}

SEC("xdp")
int xdp_ratelimit(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = ipv4_header(data, data_end);
	struct tcphdr *tcp;

	if (!ip)
		return XDP_PASS;
	tcp = tcp_header(ip, data_end);
	if (!tcp || !is_syn(tcp))
		return XDP_PASS;
	return take_token(ip->saddr) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
