"""Raw kernel interfaces: bpf(2), libbpf bindings, netlink, network namespaces, per-architecture syscall numbers."""
