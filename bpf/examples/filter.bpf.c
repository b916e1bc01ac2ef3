/* filter: allow/deny by IPv4 source prefix (XDP).
 *
 * Looks the source address up in an LPM trie of prefixes, each mapped to an action:
 * 1 allow (XDP_PASS), 2 deny (XDP_DROP). The longest matching prefix decides, so an allowed
 * /32 inside a denied /16 passes. A source no prefix matches gets the default action.
 * Non-IPv4 frames (and frames too short to parse) pass.
 *
 * Maps (pinned by name under the unit's bpffs folder):
 *   config      ARRAY, 1 entry, key u32 0 -> struct { u32 default_action; }
 *               0 means the built-in default (rodata default_action = 1, allow).
 *   prefixes_v4 LPM_TRIE (BPF_F_NO_PREALLOC), key struct { u32 prefixlen; be32 addr; }
 *               -> u32 action (1 allow, 2 deny; any other value allows).
 *   matches     PERCPU_ARRAY, 3 entries -> u64 packets: [0] no prefix matched (default
 *               applied), [1] an allow prefix matched, [2] a deny prefix matched.
 *
 * Configure in the unit (typed by this object's BTF; see the README's "Program configuration"):
 *   deny 198.51.100.0/24, allow 198.51.100.7/32 inside it, and nothing else:
 *     [Map]
 *     Policy=prefixes_v4 exact
 *     Entry=prefixes_v4 198.51.100.0/24 2
 *     Entry=prefixes_v4 198.51.100.7/32 1
 *   deny whatever no prefix matches (an allow list):
 *     Entry=config 0 {default_action=2}      (or, at load: [Program] Global=default_action=2)
 */
#include "parse.h"

#define ACTION_ALLOW 1
#define ACTION_DENY 2

#define MATCH_NONE 0

struct filter_config {
	__u32 default_action;
};

struct prefix_v4 {
	__u32 prefixlen;
	__be32 addr;
};

const volatile __u32 default_action = ACTION_ALLOW;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix_v4);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} prefixes_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} matches SEC(".maps");

/* The action for `saddr`, counted under what decided it. */
static __always_inline __u32 action_for(__be32 saddr)
{
	struct prefix_v4 key = { .prefixlen = 32, .addr = saddr };
	__u32 *matched = bpf_map_lookup_elem(&prefixes_v4, &key);
	__u32 zero = 0, action, slot;
	struct filter_config *cfg;
	__u64 *count;

	if (matched) {
		action = *matched == ACTION_DENY ? ACTION_DENY : ACTION_ALLOW;
		slot = action;
	} else {
		cfg = bpf_map_lookup_elem(&config, &zero);
		action = cfg && cfg->default_action ? cfg->default_action : default_action;
		slot = MATCH_NONE;
	}
	count = bpf_map_lookup_elem(&matches, &slot);
	if (count)
		*count += 1; /* per-CPU: no other writer */
	return action;
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = ipv4_header(data, data_end);

	if (!ip)
		return XDP_PASS;
	return action_for(ip->saddr) == ACTION_DENY ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
