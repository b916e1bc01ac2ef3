// Types for declared values (tests/units/test_declared_values.py): ints of every size and sign,
// bools, enums, char arrays, arrays, nested structs, unions, be16/be32, addresses, MACs, LPM keys,
// per-CPU maps, and globals in .rodata, .data, .bss and custom .data.*/.rodata.* sections.
// Its XDP program drops every frame when any of verdict, data_verdict, bss_verdict or custom_verdict
// (one per kind of data section) is XDP_DROP (1), and passes it otherwise.
#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>

enum action { ACTION_ALLOW = 1, ACTION_DENY = 2, ACTION_LOG = 0x10 };

struct inner {
	__u16 port;        /* host order */
	__be16 nport;      /* network order */
	__s8 delta;
};

union either {
	__u32 number;
	__u8 bytes[4];
};

struct shapes {
	__u8 u8;
	__s8 s8;
	__u16 u16;
	__s16 s16;
	__u32 u32;
	__s32 s32;
	__u64 u64;
	__s64 s64;
	_Bool flag;
	enum action action;
	char name[8];
	__u32 list[3];
	struct inner inner;
	struct inner pair[2];
	union either either;
	__be32 addr4;
	__u8 raw4[4];
	__u8 raw6[16];
	struct in6_addr in6;
	__u8 mac[6];
};

struct prefix_v4 {
	__u32 prefixlen;
	__be32 addr;
};

struct prefix_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct shapes);
} shapes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix_v4);
	__type(value, enum action);
} lpm_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix_v6);
	__type(value, __u8);
} lpm_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} per_cpu SEC(".maps");

const volatile __u32 verdict = XDP_PASS;           /* .rodata */
const volatile __be16 rodata_port = 0;             /* .rodata */
__u32 data_verdict = XDP_PASS;                     /* .data */
__u32 bss_verdict;                                 /* .bss */
__u32 custom_verdict SEC(".data.custom") = XDP_PASS;
const volatile __u64 custom_limit SEC(".rodata.custom") = 7;
const volatile char greeting[8] = "hi";            /* .rodata */
const volatile enum action rodata_action = ACTION_ALLOW;

SEC("xdp")
int declared_shapes(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct prefix_v4 k4 = {};
	struct prefix_v6 k6 = {};
	__u64 *count = bpf_map_lookup_elem(&per_cpu, &zero);

	if (count)
		*count += custom_limit + rodata_port + greeting[0] + rodata_action;
	if (bpf_map_lookup_elem(&shapes, &zero) && bpf_map_lookup_elem(&lpm_v4, &k4)
	    && bpf_map_lookup_elem(&lpm_v6, &k6))
		return XDP_PASS;
	if (verdict == XDP_DROP || data_verdict == XDP_DROP || bss_verdict == XDP_DROP || custom_verdict == XDP_DROP)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
