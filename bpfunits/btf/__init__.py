"""BTF read from a BPF ELF object without libbpf or the kernel: the types of its maps and globals."""
