// One program per kind of event hook, each counting its runs in slot 0 of `hits`: the units
// of tests/kernel/test_events.py load one program each (and so a `hits` of their own).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void hit(void)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&hits, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int tp_getppid(void *ctx)
{
	hit();
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int raw_sys_enter(void *ctx)
{
	hit();
	return 0;
}

SEC("kprobe/__x64_sys_getppid")
int kprobe_getppid(void *ctx)
{
	hit();
	return 0;
}

SEC("kretprobe/__x64_sys_getppid")
int kretprobe_getppid(void *ctx)
{
	hit();
	return 0;
}

// The unit's Hook= names the function, whatever the section says: the test's fentry hook is on
// the kernel's own name of the getppid syscall (__do_sys_getppid where __x64_sys_getppid is an
// alias), and SEC("fexit") names none.
SEC("fentry/__x64_sys_getppid")
int fentry_getppid(void *ctx)
{
	hit();
	return 0;
}

SEC("fexit")
int fexit_hit(void *ctx)
{
	hit();
	return 0;
}

SEC("uprobe")
int uprobe_hit(void *ctx)
{
	hit();
	return 0;
}

SEC("uretprobe")
int uretprobe_hit(void *ctx)
{
	hit();
	return 0;
}

SEC("cgroup_skb/egress")
int cgroup_egress(struct __sk_buff *skb)
{
	hit();
	return 1; /* let it go */
}

SEC("cgroup_skb/ingress")
int cgroup_ingress(struct __sk_buff *skb)
{
	hit();
	return 1; /* let it in */
}

SEC("cgroup/sock_create")
int cgroup_sock_create(struct bpf_sock *sk)
{
	hit();
	return 1; /* let it be created */
}

char LICENSE[] SEC("license") = "GPL";
