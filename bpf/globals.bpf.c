// XDP: counts into a .bss global, adds a .data global, and returns the .rodata verdict (XDP_PASS).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 seen;                       /* .bss: packets seen */
__u64 step = 3;                   /* .data: added to `total` per packet */
__u64 total;                      /* .bss: step * packets */
const volatile __u32 verdict = XDP_PASS; /* .rodata */

SEC("xdp")
int use_globals(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&seen, 1);
	__sync_fetch_and_add(&total, step);
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
